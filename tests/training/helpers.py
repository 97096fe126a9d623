"""Small builders shared by the training tests."""

from __future__ import annotations

from pathlib import Path

from dropout_risk.training.settings import TrainingConfig, TrainingSettings
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort


def settings_for(store, **training) -> TrainingSettings:
    """Fast settings writing into ``store``: fewer bootstrap resamples, its own artifact directory."""
    config = {"bootstrap_resamples": 50, "folds": 3, "artifact_location": str(store.artifacts), **training}
    return TrainingSettings(training=TrainingConfig(**config))


def cohort(directory: Path, n_clients: int, seed: int, **options) -> dict[str, Path]:
    return write_cohort(simulate_cohort(SimulationConfig(n_clients=n_clients, seed=seed, **options)), directory)
