"""Concurrency: 8 writers record 2,000 sessions of 200 clients through a real server, with retries and races.

Each client's sessions belong to one writer and go in order (session n+1 only once
n is acknowledged, as a clinic's system would send them). About 10% of acknowledged
sessions are sent again (a retry after a lost response: 200, the same body); some
are posted twice at the same instant by two connections (one 201, one 200) and some
raced against a different payload for the same number (one 201, one 409).
Afterwards the database and the API must hold every acknowledged session exactly
once, with the acknowledged payload and risk; no request may fail with a 5xx.
Against SQLite (WAL, one writer at a time) and PostgreSQL (row locks).
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.processes import (
    ApiServer,
    Tally,
    database,
    report,
    same_payload,
    session_payload,
    start_with_key,
    stored_sessions,
)

pytestmark = pytest.mark.reliability  # real server processes: `make test` runs it, `make test-fast` does not

CLIENTS = 200
SESSIONS = 10
WRITERS = 8
RETRY_SHARE = 0.10
IDENTICAL_RACES = 24  # the same payload posted twice at once: one 201, one 200
CONFLICTING_RACES = 12  # two different payloads for one number at once: one 201, one 409


@dataclass
class Run:
    tally: Tally = field(default_factory=Tally)
    acknowledged: dict = field(default_factory=dict)  # (client, number) -> (payload, risk)
    problems: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    retries: int = 0
    races: int = 0
    conflicts_seen: int = 0

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def acknowledge(self, client: str, payload: dict, body: dict) -> None:
        with self.lock:
            key = (client, payload["session_number"])
            if key in self.acknowledged and self.acknowledged[key][1] != body["risk"]:
                self.problems.append(f"{key}: acknowledged twice with different risks")
            self.acknowledged[key] = (payload, body["risk"])


def _post(http: httpx.Client, run: Run, client: str, payload: dict) -> httpx.Response | None:
    try:
        response = http.post(f"/v1/clients/{client}/sessions", json=payload)
    except httpx.HTTPError as exc:
        run.tally.error(exc)
        return None
    run.tally.status(response.status_code)
    return response


def _writer(url: str, key: str, writer: int, run: Run, plan: dict) -> None:
    rng = random.Random(1000 + writer)
    mine = [f"c{i:03d}" for i in range(writer, CLIENTS, WRITERS)]
    headers = {"Authorization": f"Bearer {key}"}
    abandoned: set[str] = set()
    with (
        httpx.Client(base_url=url, headers=headers, timeout=60) as http,
        httpx.Client(base_url=url, headers=headers, timeout=60) as racer,
        ThreadPoolExecutor(2) as pool,
    ):
        for number in range(1, SESSIONS + 1):
            for client in mine:
                if client in abandoned:
                    continue
                payload = session_payload(client, number)
                kind = plan.get((client, number))
                if kind is not None:
                    if not _race(pool, (http, racer), run, client, payload, kind):
                        abandoned.add(client)
                    continue
                response, attempts = None, 0
                while response is None and attempts < 3:  # a transport error is retried with the same payload
                    response, attempts = _post(http, run, client, payload), attempts + 1
                if response is None:
                    abandoned.add(client)
                    continue
                if response.status_code != 201 and not (attempts > 1 and response.status_code == 200):
                    run.problem(f"{client}/{number}: {response.status_code} {response.text[:200]}")
                    abandoned.add(client)
                    continue
                run.acknowledge(client, payload, response.json())
                if rng.random() < RETRY_SHARE:  # the response was "lost": the clinic's system sends it again
                    with run.lock:
                        run.retries += 1
                    again = _post(http, run, client, payload)
                    if again is None or again.status_code != 200 or again.json() != response.json():
                        run.problem(
                            f"retry of {client}/{number}: "
                            f"{None if again is None else again.status_code}, not 200 with the same body"
                        )


def _race(
    pool: ThreadPoolExecutor,
    connections: tuple[httpx.Client, httpx.Client],
    run: Run,
    client: str,
    payload: dict,
    kind: str,
) -> bool:
    """Post ``payload`` and its twin (the same, or a different one) at the same instant on two connections."""
    other = payload if kind == "identical" else session_payload(client, payload["session_number"], variant=1)
    barrier = threading.Barrier(2, timeout=30)

    def fire(connection: httpx.Client, body: dict) -> httpx.Response | None:
        barrier.wait()
        return _post(connection, run, client, body)

    futures = [pool.submit(fire, connections[0], payload), pool.submit(fire, connections[1], other)]
    outcomes = [(future.result(), body) for future, body in zip(futures, (payload, other), strict=True)]
    with run.lock:
        run.races += 1
    if any(response is None for response, _ in outcomes):
        return False
    codes = sorted(response.status_code for response, _ in outcomes)
    expected = [200, 201] if kind == "identical" else [201, 409]
    where = f"{kind} race on {client}/{payload['session_number']}"
    if codes != expected:
        run.problem(f"{where}: {codes}, expected {expected}")
    for response, body in outcomes:
        if response.status_code in (200, 201):
            run.acknowledge(client, body, response.json())
    if kind == "identical" and codes == expected and outcomes[0][0].json() != outcomes[1][0].json():
        run.problem(f"{where}: the two bodies differ")
    if kind == "conflicting":
        with run.lock:
            run.conflicts_seen += codes.count(409)
    return True


def _race_plan() -> dict:
    """Which sessions are raced, and how: a third of them are first sessions (two writers creating the client)."""
    rng = random.Random(7)
    clients = rng.sample([f"c{i:03d}" for i in range(CLIENTS)], IDENTICAL_RACES + CONFLICTING_RACES)
    plan = {}
    for i, client in enumerate(clients):
        number = 1 if i % 3 == 0 else rng.randint(2, SESSIONS)
        plan[(client, number)] = "identical" if i < IDENTICAL_RACES else "conflicting"
    return plan


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_writers_store_every_acknowledged_session_exactly_once(backend, champion, tmp_path):
    with database(backend, tmp_path) as url:
        with ApiServer(tmp_path, url, champion.store.uri) as server:
            key = start_with_key(server, "concurrency-clinic")
            run = Run()
            plan = _race_plan()
            started = time.monotonic()
            threads = [
                threading.Thread(target=_writer, args=(server.url, key, w, run, plan), daemon=True)
                for w in range(WRITERS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=600)
            assert not any(t.is_alive() for t in threads), "writers did not finish within 10 minutes"
            elapsed = time.monotonic() - started
            api_mismatches, reads = _read_back(server, key, run)
        stored = stored_sessions(url)

    lost = [k for k in run.acknowledged if k not in stored]
    duplicated = [k for k, rows in stored.items() if len(rows) != 1]
    altered = [
        k
        for k, (payload, risk) in run.acknowledged.items()
        if k in stored and not (same_payload(stored[k][0], payload) and stored[k][0]["risk"] == risk)
    ]
    unacknowledged = [k for k in stored if k not in run.acknowledged]
    report(
        f"item 2 concurrency [{backend}]",
        writers=WRITERS,
        clients=CLIENTS,
        sessions_planned=CLIENTS * SESSIONS,
        write_requests=run.tally.requests,
        retries=run.retries,
        races=run.races,
        conflicts_409=run.conflicts_seen,
        acknowledged=len(run.acknowledged),
        server_errors_5xx=run.tally.server_errors,
        transport_errors=sum(run.tally.errors.values()),
        lost=len(lost),
        duplicated=len(duplicated),
        altered=len(altered),
        stored_unacknowledged=len(unacknowledged),
        read_requests=reads.requests,
        seconds=round(elapsed, 1),
        writes_per_second=round(run.tally.requests / elapsed, 1),
    )
    print(f"  writes: {run.tally.summary()}\n  reads: {reads.summary()}")
    assert run.problems == []
    assert run.tally.server_errors == 0 and not run.tally.errors
    assert len(run.acknowledged) == CLIENTS * SESSIONS
    assert lost == [] and duplicated == [] and altered == [] and unacknowledged == []
    assert api_mismatches == [] and set(reads.statuses) == {200}


def _read_back(server: ApiServer, key: str, run: Run) -> tuple[list[str], Tally]:
    """Every client's history through the API: sessions 1..10 with the acknowledged dates, once each."""
    reads = Tally()
    mismatches = []
    with server.client(key) as http:
        for i in range(CLIENTS):
            client = f"c{i:03d}"
            response = http.get(f"/v1/clients/{client}/risk")
            reads.status(response.status_code)
            history = response.json().get("history", []) if response.status_code == 200 else []
            got = [(h["session_number"], h["session_date"]) for h in history]
            expected = [
                (n, run.acknowledged[(client, n)][0]["session_date"])
                for n in range(1, SESSIONS + 1)
                if (client, n) in run.acknowledged
            ]
            if got != expected or len(expected) != SESSIONS:
                mismatches.append(client)
        caseload = http.get("/v1/clients", params={"page_size": CLIENTS})
        reads.status(caseload.status_code)
        if caseload.status_code != 200 or caseload.json()["total"] != CLIENTS:
            mismatches.append("caseload")
        elif any(item["session_number"] != SESSIONS for item in caseload.json()["items"]):
            mismatches.append("caseload: a client's current session is not its last")
    return mismatches, reads


MIGRATE_AT_ONCE = """
import sys, time
from dropout_risk.serving.db import make_engine
from dropout_risk.serving.migrate import upgrade
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade(engine)
engine.dispose()
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_on_a_fresh_database_all_migrate(backend, tmp_path):
    """Replicas starting at once (or `keys create` beside `serve`) all bring the schema up; none fails."""
    with database(backend, tmp_path) as url:
        start_at = time.time() + 4  # every process has imported by then, so they migrate together
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_AT_ONCE, url, str(start_at)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        try:
            outcomes = [(p.wait(timeout=120), p.stdout.read()[-400:]) for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
        tables = stored_sessions(url)  # the schema is there (and empty)
    report(
        f"concurrent first start [{backend}]", processes=len(processes), failed=sum(code != 0 for code, _ in outcomes)
    )
    assert [code for code, _ in outcomes] == [0] * len(processes), [out for code, out in outcomes if code]
    assert tables == {}
