"""Loading, hot swap and registry outages of the model holder, through the app."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from dropout_risk.serving.app import create_app
from dropout_risk.training.jobs.promote import promote
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.serving import ADMIN_KEY, serving_settings

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def fast_failing_registry(monkeypatch):
    # MLflow retries HTTP calls for minutes by default; an outage must be noticed quickly.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")


def test_no_model_at_start_is_not_ready_with_a_clear_log(mlflow_template, tmp_path, caplog):
    empty = mlflow_template.new_store(tmp_path, "empty.db")
    with active_store(empty), caplog.at_level(logging.ERROR, logger="dropout_risk.model"):
        app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
        with TestClient(app) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "not_ready" and ready.json()["model"]["loaded"] is False
            assert client.get("/healthz").status_code == 200
    assert any(
        "not ready" in r.getMessage() and "models:/dropout-risk@champion" in r.getMessage() for r in caplog.records
    )


def test_registry_outage_keeps_serving_and_reports_degraded(champion, tmp_path, fast_failing_registry):
    with active_store(champion.store):
        app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
        with TestClient(app) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            with active_store(MlflowStore("http://127.0.0.1:9", tmp_path)):  # nothing listens there
                reload = client.post("/v1/admin/reload", headers=ADMIN).json()
                assert reload == {"swapped": False, "version": champion.version, "registry": "unreachable"}
                ready = client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["status"] == "degraded"
                from dropout_risk.serving.db import transaction
                from dropout_risk.serving.keys import create_key

                with transaction(app.state.sessions) as db:
                    key, _ = create_key(db, "outage-clinic")
                response = client.post("/v1/clients/o/sessions", json=S1, headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 201
                assert response.json()["risk"]["model_version"] == champion.version
            assert client.post("/v1/admin/reload", headers=ADMIN).json()["registry"] == "reachable"
            assert client.get("/readyz").json()["status"] == "ready"


def test_a_newly_promoted_champion_is_swapped_in(two_models_trained, tmp_path):
    models = two_models_trained.copy_to(tmp_path / "registry")  # two models, not good ones: the swap is under test
    with active_store(models.store):
        app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
        with TestClient(app) as client:
            from dropout_risk.serving.db import transaction
            from dropout_risk.serving.keys import create_key

            with transaction(app.state.sessions) as db:
                key, _ = create_key(db, "swap-clinic")
            headers = {"Authorization": f"Bearer {key}"}
            before = client.post("/v1/score", json={"sessions": [S1]}, headers=headers).json()["risk"]
            assert before["model_version"] == models.first

            promote(models.settings, version=models.second, force=True, reason="lifecycle test")
            assert client.post("/v1/admin/reload", headers=ADMIN).json()["swapped"] is True
            after = client.post("/v1/score", json={"sessions": [S1]}, headers=headers).json()["risk"]
            assert after["model_version"] == models.second != models.first
            assert client.get("/v1/model", headers=headers).json()["version"] == models.second
