"""After a promotion the caseload follows (issue 13, part 4): ongoing clients' current risks are recomputed.

The app runs in-process with its background tasks (poll=True) on SQLite and PostgreSQL, serving the first
of two models. Ongoing and ended clients are recorded; while requests keep coming, the second model is
promoted and the app reloaded; every ongoing client's current risk must carry the new version within
``DEADLINE_SECONDS``, no request may fail, and stored session risks stay as they were served.
"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.tables import SessionRecord
from dropout_risk.training.jobs.promote import promote
from tests.support.mlflow_store import active_store
from tests.support.serving import ADMIN_KEY, Api, serving_settings

pytestmark = pytest.mark.reliability  # background tasks, a load thread and a wait

ONGOING, ENDED, DEADLINE_SECONDS = 120, 10, 30
S = [
    {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}},
    {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}},
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_promotion_recomputes_every_ongoing_current_risk_without_a_failed_request(
    backend, two_models, tmp_path, request
):
    models = two_models.copy_to(tmp_path / "registry")
    url = f"sqlite:///{tmp_path}/db.sqlite" if backend == "sqlite" else request.getfixturevalue("postgres_database")
    with active_store(models.store):
        app = create_app(serving_settings(url, recompute_interval_seconds=0.2), poll=True)
        with TestClient(app) as client:
            _run(client, app, models, backend)


def _run(client, app, models, backend) -> None:
    _, headers = Api(client, app, backend).add_clinic()
    for i in range(ONGOING + ENDED):
        for body in S:
            assert client.post(f"/v1/clients/c{i}/sessions", json=body, headers=headers).status_code == 201
    for i in range(ONGOING, ONGOING + ENDED):
        assert client.put(f"/v1/clients/c{i}", json={"status": "dropout"}, headers=headers).status_code == 200

    failures, stop = [], threading.Event()

    def load() -> None:  # requests throughout the recompute: reads, scores and new sessions
        n = 0
        while not stop.is_set():
            n += 1
            for method, path, body in (
                ("GET", "/v1/clients?order=risk", None),
                ("POST", f"/v1/clients/new-{n}/sessions", S[0]),
                ("GET", f"/v1/clients/c{n % ONGOING}/risk", None),
            ):
                response = client.request(method, path, json=body, headers=headers)
                if response.status_code >= 300:
                    failures.append(f"{method} {path}: {response.status_code}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        promote(models.settings, version=models.second, force=True, reason="recompute test")
        promoted = time.monotonic()
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert client.post("/v1/admin/reload", headers=admin).json()["version"] == models.second
        while time.monotonic() - promoted < DEADLINE_SECONDS:
            items = client.get("/v1/clients?page_size=1000", headers=headers).json()["items"]
            if all(i["model_version"] == models.second for i in items if i["status"] == "ongoing"):
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - promoted
    finally:
        stop.set()
        thread.join(timeout=30)
    print(f"{backend}: {ONGOING} ongoing clients recomputed within {elapsed:.1f} s of the promotion")
    items = {i["client_id"]: i for i in client.get("/v1/clients?page_size=1000", headers=headers).json()["items"]}
    assert all(items[f"c{i}"]["model_version"] == models.second for i in range(ONGOING)), "not all recomputed"
    assert all(items[f"c{i}"]["model_version"] == models.first for i in range(ONGOING, ONGOING + ENDED))
    assert not failures, failures[:5]
    served = client.get("/v1/clients/c0/risk", headers=headers).json()["risk"]
    assert items["c0"]["probability"] == pytest.approx(served["probability"], abs=1e-12)
    with transaction(app.state.sessions) as db:  # the risks served at sessions are never rewritten
        stored = db.scalars(select(SessionRecord.model_version).where(SessionRecord.session_number == 2)).all()
    assert set(stored) == {models.first}
    assert client.get("/readyz").json()["model"]["current_risks"]["version"] == models.second
