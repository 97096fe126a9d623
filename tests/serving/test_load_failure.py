"""A registered version whose scorer files are damaged or gone: a load failure, not a registry outage.

The registry answers, so /readyz must not say "unreachable": it names the version that
failed and why, the previous version keeps serving, and the poll does not download and
parse the broken version again every few seconds (the alias moving, or an admin reload,
retries it).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from dropout_risk.models.artifact import SCORER_DIR, SCORER_JSON
from dropout_risk.models.registry import CHAMPION, MODEL_NAME, load_model, log_model, set_alias
from dropout_risk.serving import model_holder
from dropout_risk.serving.app import create_app
from dropout_risk.serving.model_holder import ModelHolder
from dropout_risk.training.data import load_contract
from dropout_risk.training.jobs.promote import promote
from dropout_risk.training.jobs.train import train
from tests.support.serving import ADMIN_KEY, serving_settings
from tests.support.training import settings_for

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}


@dataclass(frozen=True)
class Versions:
    good: str
    corrupt: str  # scorer.json is not JSON
    missing: str  # the scorer folder is gone from the artifact store
    unpromoted: str  # intact files, but the gate never promoted it: the alias was moved by hand


def _register_copy(good: str, rows, experiment: str, *, promoted: bool = True) -> str:
    """A new version with files of its own (the same model logged again), so damaging it spares ``good``.

    ``promoted`` writes the tags a forced promotion writes, so only the damaged files stop it loading.
    """
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(load_model(f"models:/{MODEL_NAME}/{good}"), check_rows=rows, registered_name=MODEL_NAME)
    version = str(info.registered_model_version)
    if promoted:
        client = mlflow.MlflowClient()
        client.set_model_version_tag(MODEL_NAME, version, "gate", "promoted")
        client.set_model_version_tag(MODEL_NAME, version, "gate_reasons", "forced: load failure test")
    return version


def _scorer_folder(version: str) -> Path:
    # A local artifact store: download_artifacts gives the stored folder itself.
    return Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{version}/artifacts/{SCORER_DIR}"))


@pytest.fixture(scope="module")
def versions(mlflow_store, cohorts) -> Versions:
    settings = settings_for(mlflow_store, candidates=["logistic"], folds=2, bootstrap_resamples=20)
    paths = cohorts.files(600, seed=29)
    good = train(paths["sessions"], paths["episodes"], settings).model_version
    promote(settings, force=True, reason="load failure test: the good champion")
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    rows = load_model(f"models:/{MODEL_NAME}/{good}").build_features(data.sessions, data.episodes)
    experiment = mlflow.create_experiment("relogged", artifact_location=str(mlflow_store.artifacts / "relogged"))
    corrupt, missing = (_register_copy(good, rows, experiment) for _ in range(2))
    (_scorer_folder(corrupt) / SCORER_JSON).write_text('{"format": "dropout-risk-scorer", "vers')
    shutil.rmtree(_scorer_folder(missing))
    unpromoted = _register_copy(good, rows, experiment, promoted=False)
    return Versions(good, corrupt, missing, unpromoted)


@pytest.fixture
def champion_is(versions):
    """Point the champion alias at a version for one test; back at the good one afterwards."""
    yield lambda version: set_alias(CHAMPION, version)
    set_alias(CHAMPION, versions.good)


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Every scorer download the holder starts, by URI."""
    started: list[str] = []
    fetch = model_holder.fetch_scorer_files

    def counting(uri: str, destination: Path) -> Path:
        started.append(uri)
        return fetch(uri, destination)

    monkeypatch.setattr(model_holder, "fetch_scorer_files", counting)
    return started


def _score(client: TestClient, app) -> dict:
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.keys import create_key

    with transaction(app.state.sessions) as db:
        key, _ = create_key(db, f"load-failure-{uuid.uuid4().hex[:8]}")
    response = client.post("/v1/score", json={"sessions": [S1]}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()["risk"]


@pytest.mark.parametrize("broken", ["corrupt", "missing"])
def test_a_broken_version_is_a_load_failure_and_the_previous_one_serves(
    versions, champion_is, loads, broken, tmp_path, caplog
):
    bad = getattr(versions, broken)
    app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        champion_is(bad)
        with caplog.at_level(logging.ERROR, logger="dropout_risk.model"):
            reload = client.post("/v1/admin/reload", headers=ADMIN).json()
        assert reload["swapped"] is False and reload["version"] == versions.good
        assert reload["registry"] == "reachable" and reload["load_failed"]["version"] == bad

        ready = client.get("/readyz")
        assert ready.status_code == 200  # it still serves the previous version
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["model"]["version"] == versions.good and body["model"]["registry"] == "reachable"
        failure = body["model"]["load_failed"]
        assert failure["version"] == bad and failure["error"] and failure["reason"]
        if broken == "corrupt":
            assert (failure["error"], failure["reason"]) == ("ArtifactError", f"{SCORER_JSON} is not valid JSON")
        assert "dropout-risk-scorer" not in ready.text  # the reason, not the file's content
        assert _score(client, app)["model_version"] == versions.good
        assert any(f"version {bad} load failed" in r.getMessage() for r in caplog.records)
        assert not any("unreachable" in r.getMessage() for r in caplog.records)

        # Polls leave the broken version alone: no download, no parse, same report.
        holder: ModelHolder = app.state.holder
        loads.clear()
        assert holder.refresh(retry_failed=False) is False and holder.refresh(retry_failed=False) is False
        assert loads == []
        assert client.get("/readyz").json()["model"]["load_failed"]["version"] == bad

        # An admin reload tries again (and fails again: the files are still broken).
        client.post("/v1/admin/reload", headers=ADMIN)
        assert loads == [f"models:/{MODEL_NAME}/{bad}"]

        # The alias back on the version being served: nothing failed any more.
        champion_is(versions.good)
        client.post("/v1/admin/reload", headers=ADMIN)
        back = client.get("/readyz").json()
        assert back["status"] == "ready" and "load_failed" not in back["model"]


def test_the_poll_does_not_reload_a_broken_version(versions, champion_is, loads):
    champion_is(versions.corrupt)
    holder = ModelHolder(f"models:/{MODEL_NAME}@{CHAMPION}")
    assert holder.refresh() is False and holder.current is None
    assert holder.load_failure is not None and holder.load_failure.version == versions.corrupt
    assert holder.registry_reachable and len(loads) == 1

    async def poll_for_a_while() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(holder.poll(0.02), timeout=0.5)

    asyncio.run(poll_for_a_while())
    assert len(loads) == 1  # about 25 polls, no second load

    champion_is(versions.missing)  # the alias moves: that version is tried, once
    asyncio.run(poll_for_a_while())
    assert loads[1:] == [f"models:/{MODEL_NAME}/{versions.missing}"]
    assert holder.load_failure is not None and holder.load_failure.version == versions.missing

    champion_is(versions.good)
    asyncio.run(poll_for_a_while())
    assert holder.current is not None and holder.current.version == versions.good
    assert holder.load_failure is None


def test_a_cold_start_on_a_broken_version_is_not_ready_and_says_why(versions, champion_is, tmp_path, caplog):
    champion_is(versions.corrupt)
    with caplog.at_level(logging.ERROR, logger="dropout_risk.model"):
        app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
        with TestClient(app) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            body = ready.json()
            assert body["status"] == "not_ready" and body["model"]["loaded"] is False
            assert body["model"]["registry"] == "reachable"
            assert body["model"]["load_failed"]["version"] == versions.corrupt
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"version {versions.corrupt} load failed" in m and "not ready" in m for m in messages)
    assert not any("registry unreachable" in m for m in messages)


def test_a_version_the_gate_did_not_promote_is_not_loaded(versions, champion_is, loads, tmp_path, caplog):
    """Moving the alias by hand bypasses the gate: the server refuses that version and says by which rule."""
    app = create_app(serving_settings(f"sqlite:///{tmp_path}/api.db"), poll=False)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        loads.clear()
        champion_is(versions.unpromoted)
        with caplog.at_level(logging.ERROR, logger="dropout_risk.model"):
            reload = client.post("/v1/admin/reload", headers=ADMIN).json()
        assert reload["swapped"] is False and reload["version"] == versions.good
        failure = client.get("/readyz").json()["model"]["load_failed"]
        assert failure["version"] == versions.unpromoted and failure["error"] == "NotPromoted"
        assert "gate=promoted" in failure["reason"] and "--force --reason" in failure["reason"]
        assert loads == []  # refused on its tags, before any of its files is downloaded
        assert _score(client, app)["model_version"] == versions.good
        assert any(f"version {versions.unpromoted} load failed" in r.getMessage() for r in caplog.records)

        # A rejected version is refused too, although its files are fine.
        mlflow.MlflowClient().set_model_version_tag(MODEL_NAME, versions.unpromoted, "gate", "rejected")
        client.post("/v1/admin/reload", headers=ADMIN)
        assert client.get("/readyz").json()["model"]["load_failed"]["version"] == versions.unpromoted
        mlflow.MlflowClient().delete_model_version_tag(MODEL_NAME, versions.unpromoted, "gate")


def test_the_cli_does_not_hide_mlflows_pickle_warning():
    import dropout_risk.cli.main  # noqa: F401  (it configures logging on import)

    assert logging.getLogger("mlflow.pyfunc").getEffectiveLevel() <= logging.WARNING
