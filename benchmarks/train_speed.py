"""Train a 5,000-client simulated cohort to a registered model; print the seconds (target < 120 s).

Runs in a throwaway SQLite MLflow store with the default settings (5 folds, both
candidates, 200 bootstrap resamples), exactly as `dropout-risk train` would.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import mlflow

from dropout_risk.training.jobs.train import train
from dropout_risk.training.settings import TrainingConfig, TrainingSettings
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort

CLIENTS = 5_000
TARGET_SECONDS = 120


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        paths = write_cohort(simulate_cohort(SimulationConfig(n_clients=CLIENTS, seed=1)), root / "data")
        settings = TrainingSettings(training=TrainingConfig(artifact_location=str(root / "artifacts")))
        start = time.perf_counter()
        outcome = train(paths["sessions"], paths["episodes"], settings, truth_path=paths["truth"])
        seconds = time.perf_counter() - start
    report = outcome.report
    print(f"clients={CLIENTS} model={report['model_kind']} version={outcome.model_version}")
    print(f"train_to_registered_seconds={seconds:.1f} target_seconds={TARGET_SECONDS}")
    print(
        f"test_roc_auc={report['test']['roc_auc']:.3f} true_risk_roc_auc={report['true_risk']['roc_auc']:.3f} "
        f"ratio={report['true_risk']['ratio']:.3f} slope={report['test']['calibration_slope']:.3f} "
        f"ece={report['test']['ece']:.4f}"
    )


if __name__ == "__main__":
    main()
