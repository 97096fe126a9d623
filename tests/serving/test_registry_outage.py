"""Registry outage: the MLflow tracking server (a real ``mlflow server``) goes away and comes back.

A model is trained through the tracking server (artifacts proxied by it), promoted,
and registered a second time (version 2). Then, with the service polling the alias
every 0.5 s:

1. cold start in an outage: the service starts while the tracking server is down; it
   is up but not ready (503, and /v1 answers 503, not 500) until the server is back,
   then it loads the champion by itself;
2. a hung registry (the server's processes SIGSTOPped: connections accepted, never
   answered): two clients keep scoring and recording without a failure, /readyz says
   "degraded"; when it resumes, "ready";
3. the registry stops (terminated): the same; it is started again on the same store,
   version 2 is promoted, and the service picks it up within a few poll intervals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from dropout_risk.models.registry import MODEL_NAME
from dropout_risk.training.jobs.promote import promote
from dropout_risk.training.jobs.train import train
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.processes import ApiServer, MlflowServer, Tally, report, session_payload, start_with_key
from tests.support.training import settings_for

pytestmark = pytest.mark.reliability  # real server processes: `make test` runs it, `make test-fast` does not

CLIENTS = 2
POLL_SECONDS = 0.5
OUTAGE_SECONDS = 1.5  # down for a few polls after /readyz first says degraded (and, when stopped, while it restarts)
WAIT_SECONDS = 30.0
# MLflow retries an HTTP call for minutes by default: the service must notice the outage at once.
FAST_FAILING_REGISTRY = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}


@dataclass
class Scorer:
    index: int
    versions: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def run(self, url: str, key: str, tally: Tally, stop: threading.Event) -> None:
        client = f"outage-{self.index}"
        body = {"sessions": [session_payload(client, n, seed=5) for n in range(1, 3)]}
        number = 0
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for _ in range(100_000):
                if stop.is_set():
                    return
                requests = [("/v1/score", body)]
                if number < 400:
                    requests.append((f"/v1/clients/{client}/sessions", session_payload(client, number + 1, seed=5)))
                for path, payload in requests:
                    try:
                        response = http.post(path, json=payload)
                    except httpx.HTTPError as exc:
                        tally.error(exc)
                        self.failures.append(type(exc).__name__)
                        continue
                    tally.status(response.status_code)
                    if response.status_code >= 300:
                        self.failures.append(response.status_code)
                        continue
                    number += path.endswith("/sessions")
                    self.versions.append(response.json()["risk"]["model_version"])
                time.sleep(0.02)  # a steady trickle, not a flood: the outage is the subject here


def _register_again(version: str) -> str:
    """A new version of the registered model from the same logged model (training again takes longer)."""
    source = MlflowClient().get_model_version(MODEL_NAME, version).source  # models:/m-<logged model id>
    return str(mlflow.register_model(source, MODEL_NAME).version)


def _wait_for(check, what: str, timeout: float = WAIT_SECONDS) -> float:
    """Seconds until ``check()`` holds (polled every 0.1 s); fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout:.0f} s")


def test_registry_outages_keep_serving_then_the_new_champion_is_picked_up(mlflow_template, cohorts, tmp_path):
    registry_dir = tmp_path / "registry"
    registry_dir.mkdir()
    scorers = [Scorer(i) for i in range(CLIENTS)]
    tally, stop, threads, figures = Tally(), threading.Event(), [], {}
    with MlflowServer(registry_dir, template=mlflow_template) as registry:
        registry.start()
        store = MlflowStore(registry.url, registry.artifacts)
        with active_store(store):
            settings = settings_for(
                store, artifact_location=None, candidates=["logistic"], folds=2, bootstrap_resamples=20
            )  # artifacts go through the server
            data = cohorts.files(600, seed=31)
            first = train(data["sessions"], data["episodes"], settings).model_version
            promote(settings, force=True, reason="outage test: the first champion")
            second = _register_again(first)
        registry.stop()

        url = f"sqlite:///{tmp_path}/dropout_risk.db"
        with ApiServer(tmp_path, url, registry.url, poll_interval=POLL_SECONDS, env=FAST_FAILING_REGISTRY) as api:
            # 1. Cold start while the registry is down.
            key = start_with_key(api, "outage-clinic", ready=False)
            with api.client(key, timeout=10) as http:

                def readyz() -> dict:
                    return http.get("/readyz").json()

                cold = http.get("/readyz")
                cold_score = http.post("/v1/score", json={"sessions": [session_payload("cold", 1)]})
                registry.start()
                figures["seconds_to_ready_after_cold_start"] = round(
                    _wait_for(lambda: http.get("/readyz").status_code == 200, "ready once the registry is back"), 1
                )
                assert readyz()["model"]["version"] == first

                threads = [
                    threading.Thread(target=s.run, args=(api.url, key, tally, stop), daemon=True) for s in scorers
                ]
                try:
                    for thread in threads:
                        thread.start()
                    time.sleep(1.0)

                    # 2. A hung registry.
                    registry.freeze()
                    try:
                        figures["seconds_to_degraded_hung"] = round(
                            _wait_for(lambda: readyz()["status"] == "degraded", "degraded (hung registry)"), 1
                        )
                        time.sleep(OUTAGE_SECONDS)
                        hung = (http.get("/readyz"), http.get("/v1/model").json()["version"])
                    finally:
                        registry.thaw()
                    figures["seconds_to_ready_after_hang"] = round(
                        _wait_for(lambda: readyz()["status"] == "ready", "ready after the hang"), 1
                    )

                    # 3. The registry stops, and comes back with a new champion.
                    registry.stop()
                    outage_started = time.monotonic()
                    served_before = sum(len(s.versions) for s in scorers)
                    figures["seconds_to_degraded_stopped"] = round(
                        _wait_for(lambda: readyz()["status"] == "degraded", "degraded (stopped registry)"), 1
                    )
                    time.sleep(OUTAGE_SECONDS)
                    stopped = (http.get("/readyz"), http.get("/v1/model").json()["version"])
                    registry.start()  # on the same store and port; the outage lasts while it starts
                    figures["served_during_stop"] = sum(len(s.versions) for s in scorers) - served_before
                    figures["stop_outage_seconds"] = round(time.monotonic() - outage_started, 1)
                    figures["seconds_to_ready_after_restart"] = round(
                        _wait_for(lambda: readyz()["status"] == "ready", "ready again"), 1
                    )
                    promoted_at = time.monotonic()
                    with active_store(store):
                        promote(settings, version=second, force=True, reason="outage test: after the outage")
                    _wait_for(lambda: http.get("/v1/model").json()["version"] == second, "swapped")
                    figures["seconds_from_promotion_to_new_champion"] = round(time.monotonic() - promoted_at, 1)
                    time.sleep(1.0)
                finally:
                    stop.set()
                    for thread in threads:
                        thread.join(timeout=60)
                after = readyz()

    versions = [v for s in scorers for v in s.versions]
    order = {first: 0, second: 1}
    went_back = [
        s.index
        for s in scorers
        if any(order.get(a, -1) > order.get(b, -1) for a, b in zip(s.versions, s.versions[1:], strict=False))
    ]
    report(
        "item 8 registry outage",
        requests=tally.requests,
        responses_2xx=len(versions),
        failed=sum(len(s.failures) for s in scorers),
        server_errors_5xx=tally.server_errors,
        went_back=len(went_back),
        **figures,
    )
    print(f"  {tally.summary()}")
    assert cold.status_code == 503 and cold.json()["status"] == "not_ready"
    assert cold_score.status_code == 503
    for (ready, version), what in ((hung, "hung"), (stopped, "stopped")):
        assert ready.status_code == 200, what  # degraded is still ready: it serves
        assert ready.json()["status"] == "degraded", what
        model = ready.json()["model"]
        # current_risks (the recompute after a swap, issue 13) says nothing of the registry
        assert {k: v for k, v in model.items() if k != "current_risks"} == {
            "loaded": True,
            "version": first,
            "registry": "unreachable",
        }, what
        assert version == first, what
    assert all(not s.failures for s in scorers), [s.failures[:5] for s in scorers]
    assert figures["served_during_stop"] > 0
    assert set(versions) == {first, second} and went_back == []
    assert after["status"] == "ready" and after["model"]["version"] == second
