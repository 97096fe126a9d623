"""The API in-process on SQLite and on PostgreSQL, serving the session's champion (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dropout_risk.serving.app import create_app
from tests.support.mlflow_store import active_store
from tests.support.serving import Api, drop_api_tables, serving_settings


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
            drop_api_tables(url)
