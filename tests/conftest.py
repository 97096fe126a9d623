"""Fixtures shared across the suite: real data, real MLflow stores, real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

SHARED_DATA = Path(os.environ.get("DROPOUT_RISK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
POSTGRES_ADMIN_URL = os.environ.get("DROPOUT_RISK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _missing(reason: str, required_by: str) -> None:
    """Skip with the reason, except where the environment says the resource must be there."""
    if os.environ.get(required_by):
        pytest.fail(f"{reason} (required here: {required_by} is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def trial_dir() -> Path:
    """The real antidepressant-trial data (shared/data beside the checkout)."""
    path = SHARED_DATA / "antidepressant-trial"
    if not (path / "sessions.csv").is_file():
        _missing(f"real trial data not found at {path} (it ships in shared/data beside the checkout)", "CI")
    return path


class MlflowStore:
    """A real MLflow tracking store (SQLite by default) with its own artifact directory."""

    def __init__(self, uri: str, artifacts: Path):
        self.uri = uri
        self.artifacts = artifacts

    def activate(self) -> None:
        os.environ["MLFLOW_TRACKING_URI"] = self.uri
        mlflow.set_tracking_uri(self.uri)


@contextmanager
def active_store(store: MlflowStore) -> Iterator[MlflowStore]:
    """Point MLflow (and child processes) at ``store``; restore the previous URI afterwards."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    store.activate()
    try:
        yield store
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        mlflow.set_tracking_uri(previous)  # None: back to MLflow's default


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> Iterator[MlflowStore]:
    """A fresh SQLite-backed store per test module, active for that module."""
    root = tmp_path_factory.mktemp("mlflow")
    with active_store(MlflowStore(f"sqlite:///{root}/mlflow.db", root / "artifacts")) as store:
        yield store


@contextmanager
def fresh_postgres_database(prefix: str = "dropout_risk_test") -> Iterator[str]:
    """A database of its own on the local PostgreSQL server (dropped afterwards); its SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _missing(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})", "DROPOUT_RISK_REQUIRE_POSTGRES")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for the session (psycopg 3 URL)."""
    with fresh_postgres_database() as url:
        yield url
