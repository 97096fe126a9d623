"""Compare 4 feature sets on a 5,000-client simulated cohort; print the seconds (target < 180 s).

LightGBM, 5 client-grouped folds (each with 3 inner calibration folds), 1 repeat,
200 bootstrap resamples per set and 2,000 per pair, in a throwaway SQLite MLflow
store: exactly what `dropout-risk compare --feature-sets ... --model lightgbm` does
with the default settings.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import mlflow

from dropout_risk.training.compare_settings import CompareSettings
from dropout_risk.training.comparison.feature_sets import DEFAULT_FEATURE_SETS
from dropout_risk.training.jobs.compare import compare
from dropout_risk.training.settings import TrainingConfig
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort

CLIENTS = 5_000
TARGET_SECONDS = 180


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        paths = write_cohort(simulate_cohort(SimulationConfig(n_clients=CLIENTS, seed=1)), root / "data")
        settings = CompareSettings(training=TrainingConfig(artifact_location=str(root / "artifacts")))
        stages: list[tuple[float, str]] = []
        start = time.perf_counter()
        report = compare(
            paths["sessions"],
            paths["episodes"],
            settings,
            list(DEFAULT_FEATURE_SETS),
            model="lightgbm",
            folds=5,
            out_dir=root / "plots",
            progress=lambda message: stages.append((time.perf_counter() - start, message)),
        )
        seconds = time.perf_counter() - start
    fitted = next(t for t, m in stages if m.startswith("bootstrap CIs"))
    print(
        f"clients={CLIENTS} sets={len(report.feature_sets)} folds={report.design.folds} "
        f"model={report.model} rows={report.data.rows}"
    )
    print(f"compare_seconds={seconds:.1f} target_seconds={TARGET_SECONDS} (fitting done at {fitted:.1f} s)")
    for name, result in report.feature_sets.items():
        metrics = result.metrics.pooled
        lo, hi = metrics.roc_auc_ci
        print(
            f"  {name}: roc_auc={metrics.roc_auc:.3f} ({lo:.3f}-{hi:.3f}) brier={metrics.brier:.4f} "
            f"slope={metrics.calibration_slope:.2f}"
        )
    for pair in report.pairs:
        lo, hi = pair.ci
        print(
            f"  {pair.a} - {pair.b}: {pair.delta_auc:+.3f} ({lo:+.3f} to {hi:+.3f}) "
            f"p={pair.p_value:.4f} holm={pair.p_value_holm:.4f} marked={pair.marked}"
        )


if __name__ == "__main__":
    main()
