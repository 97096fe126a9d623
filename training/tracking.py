"""What a training run records in MLflow besides the model: dataset digests and flat metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import from_pandas

from dropout_risk.training.data import read_table

_POOLED = (
    "within_landmark_auc",
    "roc_auc",
    "pr_auc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "ece",
    "sensitivity_top10",
    "precision_top10",
    "sensitivity_top20",
    "precision_top20",
    "sensitivity_top30",
    "precision_top30",
    "alerted_share",
    "median_lead_sessions",
)
_PER_LANDMARK = ("roc_auc", "brier", "calibration_slope")


def use_experiment(name: str, artifact_location: str | None = None) -> str:
    """Select (creating if needed) the experiment; returns its id."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_dataset(sessions_path: Path, episodes_path: Path) -> dict[str, str]:
    """Log both files as MLflow dataset inputs; returns their digests."""
    digests = {}
    for name, path in (("sessions", sessions_path), ("episodes", episodes_path)):
        dataset = from_pandas(read_table(path), source=str(Path(path).resolve()), name=name)
        mlflow.log_input(dataset, context="training")
        digests[name] = dataset.digest
    return digests


def _finite(metrics: dict[str, float | None]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _flatten(prefix: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    flat = {f"{prefix}_{name}": metrics.get(name) for name in _POOLED}
    for name, (lo, hi) in metrics.get("ci", {}).items():
        flat[f"{prefix}_{name}_ci_lo"], flat[f"{prefix}_{name}_ci_hi"] = lo, hi
    for landmark, values in metrics.get("by_landmark", {}).items():
        flat.update({f"{prefix}_l{landmark}_{name}": values.get(name) for name in _PER_LANDMARK})
    return flat


def log_report_metrics(report: dict[str, Any]) -> None:
    flat = _flatten("test", report["test"])
    for name, metrics in report["baselines"].items():
        flat.update(_flatten(f"baseline_{name}", metrics))
    flat.update({f"cv_auc_{k}": v for k, v in report["selection"]["cv_auc"].items()})
    flat.update({f"cv_within_landmark_auc_{k}": v for k, v in report["selection"]["cv_within_landmark_auc"].items()})
    if "monotonicity" in report:
        flat["monotonicity_worst_rate"] = report["monotonicity"]["worst_rate"]
        flat["monotonicity_worst_rate_from_2"] = report["monotonicity"]["worst_rate_from_2"]
    if "true_risk" in report:
        flat["true_risk_roc_auc"] = report["true_risk"]["roc_auc"]
        flat["true_risk_ratio"] = report["true_risk"]["ratio"]
        flat["true_risk_within_landmark_auc"] = report["true_risk"]["within_landmark_auc"]
        flat["true_risk_within_landmark_ratio"] = report["true_risk"]["within_landmark_ratio"]
    mlflow.log_metrics(_finite(flat))
