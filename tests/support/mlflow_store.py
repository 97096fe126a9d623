"""Real MLflow tracking stores for tests: a migrated SQLite template, copied for each fresh store.

Creating MLflow's schema runs every Alembic migration (seconds on a busy 2-core machine); a copy of
a file that has already been migrated is a fresh store at once: MLflow finds its tables at the
current revision and migrates nothing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient


@dataclass(frozen=True)
class MlflowStore:
    """A real MLflow tracking store (SQLite by default) with its own artifact directory."""

    uri: str
    artifacts: Path

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
        # None puts MLflow back on its default (and on the environment variable, if set later);
        # MLflow accepts it, its annotation does not say so.
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


class StoreTemplate:
    """One SQLite file migrated to MLflow's current schema; each fresh store starts as a copy of it."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "template.db"
        uri = f"sqlite:///{self.path}"
        # The first tracking and registry calls create and migrate every table; nothing else is written.
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments()
        client.search_registered_models()

    def copy_to(self, path: Path) -> str:
        """A fresh store's file at ``path`` (a consistent copy, whatever MLflow still holds open); its URI."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path)) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)
        return f"sqlite:///{path}"

    def new_store(self, root: Path, name: str = "mlflow.db") -> MlflowStore:
        """A fresh store in ``root``: its database file and its artifact directory."""
        return MlflowStore(self.copy_to(root / name), root / "artifacts")
