"""Teams track in PostgreSQL: train, register and promote against a real server."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from dropout_risk.models.registry import CHAMPION, version_for_alias
from dropout_risk.training.jobs.promote import promote
from dropout_risk.training.jobs.train import train
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.postgres import fresh_postgres_database
from tests.support.training import settings_for


@pytest.fixture
def postgres_store(tmp_path):
    # A database of its own: MLflow's schema keeps its Alembic revision in `alembic_version`, the table the
    # service's own migrations use in the suite's shared `postgres_database`; sharing it failed whichever ran second.
    with (
        fresh_postgres_database("dropout_risk_mlflow") as url,
        active_store(MlflowStore(url, tmp_path / "artifacts")) as store,
    ):
        yield store


def test_train_and_promote_on_a_postgresql_backend(postgres_store, cohorts):
    paths = cohorts.files(600, seed=41)
    settings = settings_for(postgres_store)
    outcome = train(paths["sessions"], paths["episodes"], settings)
    assert mlflow.get_tracking_uri().startswith("postgresql+psycopg://")
    run = MlflowClient().get_run(outcome.run_id)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(outcome.report["test"]["roc_auc"])
    assert promote(settings, force=True, reason="postgres backend test").promoted
    assert str(version_for_alias(CHAMPION).version) == outcome.model_version
