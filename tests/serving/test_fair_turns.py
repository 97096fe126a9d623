"""Scoring takes turns (issue 12, fairness): one score computes at a time, waiting clinics in rotation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from dropout_risk.serving.app import create_app
from dropout_risk.serving.fair_turns import FairTurns
from tests.support.mlflow_store import active_store
from tests.support.serving import Api, serving_settings

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 35.0}}


def _wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_waiting_clinics_are_served_in_rotation_not_in_arrival_order():
    turns = FairTurns()
    order: list[str] = []

    def scored(name: str) -> None:
        with turns.turn(name[0]):
            order.append(name)

    holder = turns.turn("x")
    holder.__enter__()
    with ThreadPoolExecutor(4) as pool:
        futures = []
        # Clinic a queues three scores before clinic b asks for one.
        for name in ("a1", "a2", "a3", "b1"):
            futures.append(pool.submit(scored, name))
            waiting = len(futures)
            _wait_until(lambda waiting=waiting: sum(len(q) for q in turns._waiting.values()) == waiting)
        assert order == [] and len(turns) == 2  # two clinics waiting, nobody computing beside the holder
        holder.__exit__(None, None, None)
        for future in futures:
            future.result(timeout=5)
    assert order == ["a1", "b1", "a2", "a3"]  # b waits for one of a's, not all three
    assert len(turns) == 0 and not turns._busy


def test_only_one_turn_is_held_at_a_time():
    turns = FairTurns()
    inside, most = 0, 0
    lock = threading.Lock()

    def work(i: int) -> None:
        nonlocal inside, most
        with turns.turn(str(i % 3)):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.001)
            with lock:
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(200)))
    assert most == 1 and len(turns) == 0 and not turns._busy


def test_a_turn_is_handed_on_when_the_holder_fails():
    turns = FairTurns()
    with pytest.raises(RuntimeError), turns.turn("a"):
        raise RuntimeError("scoring failed")
    with turns.turn("b"):  # would wait forever if the failed turn were never handed on
        pass


@pytest.fixture(scope="module", params=[True, False], ids=["fair", "unfair"])
def api(request, champion, tmp_path_factory) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path_factory.mktemp('turns')}/dropout_risk.db"
    with active_store(champion.store):
        app = create_app(serving_settings(url, fair_scoring=request.param), poll=False)
        with TestClient(app) as client:
            yield Api(client, app, "sqlite")


def test_scores_and_recorded_sessions_wait_for_their_turn(api):
    """While another clinic's score computes, this clinic's score and session wait, then are answered."""
    headers = api.new_clinic()
    turns: FairTurns | None = api.app.state.scoring_turns
    if turns is None:  # serving.fair_scoring = false: nothing waits
        assert api.client.post("/v1/score", json={"sessions": [S1, S2]}, headers=headers).status_code == 200
        return
    requests = {
        "score": lambda: api.client.post("/v1/score", json={"sessions": [S1, S2]}, headers=headers),
        "session": lambda: api.client.post("/v1/clients/c-1/sessions", json=S1, headers=headers),
    }
    for name, send in requests.items():
        with ThreadPoolExecutor(1) as pool:
            with turns.turn("another clinic"):
                pending = pool.submit(send)
                _wait_until(lambda: len(turns) == 1)  # it reached scoring and waits there
                time.sleep(0.2)
                assert not pending.done(), name
            response = pending.result(timeout=10)
        assert response.status_code in (200, 201), (name, response.text)
    assert len(turns) == 0
