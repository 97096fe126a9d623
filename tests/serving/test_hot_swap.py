"""Hot swap: a new champion is promoted while clients score; no request fails and none mixes versions.

Two models are trained up front into a store of their own; the first is champion.
A real ``dropout-risk serve`` polls the alias every 0.5 s. Four clients score a fixed
history (POST /v1/score) and record sessions in a loop while the test promotes the
second model (the real promotion path, forced). Every response must be 2xx, carry
version 1 or 2, and have the probabilities that version gives (so no response is
computed by one model and labelled with the other); each client's versions never go
back; every client ends up on the new version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from dropout_risk.training.jobs.promote import promote
from tests.support.mlflow_store import active_store
from tests.support.processes import ApiServer, Tally, report, session_payload, start_with_key

pytestmark = pytest.mark.reliability  # real server processes: `make test` runs it, `make test-fast` does not

CLIENTS = 4
POLL_SECONDS = 0.5
LOAD_BEFORE_PROMOTION_SECONDS = 1.5
LOAD_AFTER_SWAP_SECONDS = 1.5
DEADLINE_SECONDS = 90


@dataclass
class Client:
    index: int
    seen: list = field(default_factory=list)  # (kind, version, probabilities) in the order received
    failures: list = field(default_factory=list)

    def history(self) -> dict:
        name = f"scorer-{self.index}"
        return {
            "sessions": [session_payload(name, n, seed=11) for n in range(1, 4)],
            "covariates": {"age": 30 + self.index},
        }

    def run(self, url: str, key: str, tally: Tally, stop: threading.Event) -> None:
        body = self.history()
        number, recorded = 0, f"recorder-{self.index}"
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for _ in range(100_000):
                if stop.is_set():
                    return
                requests = [("score", "/v1/score", body)]
                if number < 400:
                    requests.append(
                        ("record", f"/v1/clients/{recorded}/sessions", session_payload(recorded, number + 1, seed=11))
                    )
                for kind, path, payload in requests:
                    try:
                        response = http.post(path, json=payload)
                    except httpx.HTTPError as exc:
                        tally.error(exc)
                        self.failures.append(f"{kind}: {type(exc).__name__}")
                        continue
                    tally.status(response.status_code)
                    if response.status_code >= 300:
                        self.failures.append(f"{kind}: {response.status_code}")
                        continue
                    out = response.json()
                    if kind == "record":
                        number += 1
                        probabilities = ()
                    else:
                        probabilities = (out["risk"]["probability"], *(h["probability"] for h in out["history"]))
                    self.seen.append((kind, out["risk"]["model_version"], probabilities))

    def versions(self) -> list[str]:
        return [version for _, version, _ in self.seen]


def test_promotion_under_load_swaps_without_a_failed_or_mixed_response(two_models, tmp_path):
    models = two_models
    url = f"sqlite:///{tmp_path}/dropout_risk.db"
    clients = [Client(i) for i in range(CLIENTS)]
    tally, stop = Tally(), threading.Event()
    with ApiServer(tmp_path, url, models.store.uri, poll_interval=POLL_SECONDS) as server:
        key = start_with_key(server, "hot-swap-clinic")
        threads = [threading.Thread(target=c.run, args=(server.url, key, tally, stop), daemon=True) for c in clients]
        for thread in threads:
            thread.start()
        try:
            time.sleep(LOAD_BEFORE_PROMOTION_SECONDS)
            promoted_at = time.monotonic()
            with active_store(models.store):
                promote(models.settings, version=models.second, force=True, reason="hot swap test: under load")
            deadline = time.monotonic() + DEADLINE_SECONDS
            while time.monotonic() < deadline and not all(models.second in c.versions() for c in clients):
                time.sleep(0.05)
            swapped_after = time.monotonic() - promoted_at
            time.sleep(LOAD_AFTER_SWAP_SECONDS)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        ready = httpx.get(f"{server.url}/readyz", timeout=10).json()

    responses = [seen for c in clients for seen in c.seen]
    order = {models.first: 0, models.second: 1}
    by_version: dict[tuple[int, str], set] = {}
    for client in clients:
        for kind, version, probabilities in client.seen:
            if kind == "score":
                by_version.setdefault((client.index, version), set()).add(probabilities)
    went_back = [
        c.index
        for c in clients
        if any(order.get(a, -1) > order.get(b, -1) for a, b in zip(c.versions(), c.versions()[1:], strict=False))
    ]
    report(
        "item 4 hot swap",
        clients=CLIENTS,
        requests=tally.requests,
        responses_2xx=len(responses),
        failed=sum(len(c.failures) for c in clients),
        server_errors_5xx=tally.server_errors,
        on_first_version=sum(v == models.first for _, v, _ in responses),
        on_second_version=sum(v == models.second for _, v, _ in responses),
        clients_on_new_version=sum(models.second in c.versions() for c in clients),
        went_back=len(went_back),
        seconds_from_promotion_to_all_clients_swapped=round(swapped_after, 1),
    )
    print(f"  {tally.summary()}")
    assert all(not c.failures for c in clients), [c.failures[:5] for c in clients]
    assert {v for _, v, _ in responses} <= {models.first, models.second}
    assert went_back == []
    assert all(c.versions()[0] == models.first and c.versions()[-1] == models.second for c in clients)
    # One model per response: a version's probabilities for a fixed history are always the same values.
    assert all(len(values) == 1 for values in by_version.values()), "a version gave two different answers"
    for client in clients:
        assert by_version[(client.index, models.first)] != by_version[(client.index, models.second)]
    assert ready["status"] == "ready" and ready["model"]["version"] == models.second
