"""Training for tests: settings that write into a test's own store, and a promoted champion."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropout_risk.training.jobs.promote import promote
from dropout_risk.training.jobs.train import train
from dropout_risk.training.settings import EvaluationConfig, TrainingConfig, TrainingSettings
from tests.support.mlflow_store import MlflowStore, active_store

# A recipe for tests that need models, not good ones: one candidate, two folds, the fewest resamples.
QUICK: dict[str, Any] = {"candidates": ["logistic"], "folds": 2, "bootstrap_resamples": 20}


# Tests train on cohorts of a few hundred clients to test other things: they keep the quick holdout path
# (small_data_clients 0); a test of small-data mode passes ``evaluation`` (or --evaluation cv), and then
# 3 folds x 2 repeats unless it says otherwise.
QUICK_CV: dict[str, Any] = {"cv_folds": 3, "cv_repeats": 2, "small_data_clients": 0}


def settings_for(store: MlflowStore, evaluation: dict[str, Any] | None = None, **training: Any) -> TrainingSettings:
    """Fast settings writing into ``store``: fewer bootstrap resamples and CV repeats, its own artifact directory."""
    config = {"bootstrap_resamples": 50, "folds": 3, "artifact_location": str(store.artifacts), **training}
    return TrainingSettings(
        training=TrainingConfig(**config),
        evaluation=EvaluationConfig(**(QUICK_CV if evaluation is None else evaluation)),
    )


@dataclass(frozen=True)
class Champion:
    """A trained model, promoted to champion in a store of its own, and the cohort files it learnt from."""

    store: MlflowStore
    data: dict[str, Path]
    version: str

    def save(self, path: Path) -> None:
        record = {"uri": self.store.uri, "artifacts": str(self.store.artifacts), "version": self.version}
        path.write_text(json.dumps({**record, "data": {name: str(p) for name, p in self.data.items()}}))

    @classmethod
    def load(cls, path: Path) -> Champion:
        record = json.loads(path.read_text())
        store = MlflowStore(record["uri"], Path(record["artifacts"]))
        return cls(store, {name: Path(p) for name, p in record["data"].items()}, record["version"])


def train_champion(store: MlflowStore, data: dict[str, Path], **training: Any) -> Champion:
    """Train on ``data`` into ``store`` and promote the model (forced: the gate is not under test here)."""
    with active_store(store):
        settings = settings_for(store, **training)
        outcome = train(data["sessions"], data["episodes"], settings)
        promote(settings, force=True, reason="test fixture")
    return Champion(store, data, outcome.model_version)


@dataclass(frozen=True)
class TwoModels:
    """Two models in a store of their own: ``first`` is champion, ``second`` registered only (to promote in a test)."""

    store: MlflowStore
    first: str
    second: str

    @property
    def settings(self) -> TrainingSettings:
        return settings_for(self.store, **QUICK)

    def save(self, path: Path) -> None:
        record = {"uri": self.store.uri, "artifacts": str(self.store.artifacts), "versions": [self.first, self.second]}
        path.write_text(json.dumps(record))

    @classmethod
    def load(cls, path: Path) -> TwoModels:
        record = json.loads(path.read_text())
        return cls(MlflowStore(record["uri"], Path(record["artifacts"])), *record["versions"])

    def copy_to(self, root: Path) -> TwoModels:
        """A registry of its own (a copy of the store's database) on the same artifacts, which nothing rewrites.

        A test that promotes the second model changes only its copy.
        """
        return TwoModels(copy_store(self.store, root), self.first, self.second)


def copy_store(store: MlflowStore, root: Path) -> MlflowStore:
    """A registry of its own (a copy of ``store``'s database) on the same artifact directory.

    Nothing rewrites an artifact there: a test may promote, or train (new runs get new directories).
    """
    root.mkdir(parents=True, exist_ok=True)
    copy = root / "mlflow.db"
    with (
        closing(sqlite3.connect(store.uri.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    return MlflowStore(f"sqlite:///{copy}", store.artifacts)


def train_two_models(store: MlflowStore, data: dict[str, Path]) -> TwoModels:
    """Two quick models on ``data`` (different seeds, so their risks differ); the first promoted (forced)."""
    with active_store(store):
        settings = settings_for(store, **QUICK)  # two models, not the best ones
        first = train(data["sessions"], data["episodes"], settings)
        promote(settings, force=True, reason="test fixture: the first champion")
        second = train(data["sessions"], data["episodes"], settings_for(store, seed=5, **QUICK))  # challenger only
    return TwoModels(store, first.model_version, second.model_version)
