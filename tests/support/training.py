"""Training for tests: settings that write into a test's own store, and a promoted champion."""

from __future__ import annotations

import json
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
