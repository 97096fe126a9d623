"""A real champion in a real MLflow store, and the API on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import create_key
from dropout_risk.serving.settings import ServingConfig, ServingSettings
from dropout_risk.training.jobs.promote import promote
from dropout_risk.training.jobs.train import train
from tests.conftest import MlflowStore, active_store
from tests.training.helpers import cohort, settings_for

ADMIN_KEY = "admin-test-key"
_clinics = itertools.count()


@dataclass
class Champion:
    store: MlflowStore
    data: dict[str, Path]
    version: str


@pytest.fixture(scope="session")
def champion(tmp_path_factory) -> Iterator[Champion]:
    """One trained, promoted model for the whole serving suite (training takes seconds)."""
    root = tmp_path_factory.mktemp("serving-mlflow")
    store = MlflowStore(f"sqlite:///{root}/mlflow.db", root / "artifacts")
    with active_store(store):
        data = cohort(root / "data", 1500, seed=17)
        settings = settings_for(store)
        outcome = train(data["sessions"], data["episodes"], settings)
        promote(settings, force=True, reason="serving test fixture")
        yield Champion(store, data, outcome.model_version)


@dataclass
class Api:
    client: TestClient
    app: object
    backend: str

    def add_clinic(self) -> tuple[str, dict[str, str]]:
        """A fresh clinic's name and Authorization headers: tests never see each other's clients."""
        name = f"clinic-{next(_clinics)}"
        with transaction(self.app.state.sessions) as db:
            key, _ = create_key(db, name)
        return name, {"Authorization": f"Bearer {key}"}

    def new_clinic(self) -> dict[str, str]:
        return self.add_clinic()[1]


def serving_settings(database_url: str, **serving) -> ServingSettings:
    return ServingSettings(
        database_url=database_url, admin_key=ADMIN_KEY, serving=ServingConfig(poll_interval_seconds=3600, **serving)
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, champion, tmp_path_factory) -> Iterator[Api]:
    """The app on a fresh SQLite file or a fresh PostgreSQL database (per module), lifespan running."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api')}/dropout_risk.db"
    else:
        url = request.getfixturevalue("postgres_database")
    with active_store(champion.store):
        app = create_app(serving_settings(url), poll=False)
        with TestClient(app) as client:
            yield Api(client, app, request.param)
        if request.param == "postgresql":  # the session-wide database is shared by modules
            from dropout_risk.serving.db import make_engine

            engine = make_engine(url)
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "DROP TABLE IF EXISTS dashboard_sessions, sessions, clients, api_keys, clinics,"
                        " alembic_version CASCADE"
                    )
                )
            engine.dispose()
