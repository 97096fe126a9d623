"""Evaluate scored test rows: the model, its baselines and the truth, with client-bootstrap CIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.training.evaluation.bootstrap import bootstrap_metric_cis
from dropout_risk.training.evaluation.metrics import evaluate, roc_auc
from dropout_risk.training.evaluation.subgroups import age_band, subgroup_metrics
from dropout_risk.training.evaluation.within_landmark import WithinLandmarkAUC, within_landmark_auc

CI_METRICS = ("roc_auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece")


def _as_risk(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    """The frame with ``score`` as its ``risk`` column (the metric functions read ``risk``)."""
    return frame if score == "risk" else frame.assign(risk=frame[score])


def alert_threshold(risk: np.ndarray, top_fraction: float) -> float:
    """The risk above which the top ``top_fraction`` of rows are flagged."""
    return float(np.quantile(risk, 1 - top_fraction))


def evaluate_scores(
    frame: pd.DataFrame,
    score: str,
    *,
    n_resamples: int,
    seed: int,
    top_fraction: float,
    min_class_clients: int,
    within: WithinLandmarkAUC | None = None,
) -> dict:
    """Within-landmark AUC, pooled metrics, ``ci`` beside them, and ``by_landmark`` with its own CIs.

    ``within_landmark_auc`` (``training.evaluation.within_landmark``) is the primary figure; the
    pooled ``roc_auc`` includes the session-number effect. ``excluded_landmarks`` name the landmarks
    the within-landmark mean leaves out, and why. ``within``: computed by the caller (small-data mode
    compares out-of-fold risks within folds: ``stratified_within_landmark_auc``).
    """
    scored = _as_risk(frame, score)
    threshold = alert_threshold(scored["risk"].to_numpy(), top_fraction)
    result = evaluate(scored, alert_threshold=threshold)
    cis = bootstrap_metric_cis(scored, metrics=CI_METRICS, n_resamples=n_resamples, seed=seed)
    if within is None:
        within = within_landmark_auc(scored, min_class_clients=min_class_clients, n_resamples=n_resamples, seed=seed)
    out = {"within_landmark_auc": within.auc, **result["pooled"]}
    out["ci"] = {"within_landmark_auc": list(within.ci), **cis["pooled"]}
    out["evaluable_landmarks"] = list(within.landmarks)
    out["excluded_landmarks"] = [{"landmark": e.landmark, "reason": e.reason} for e in within.excluded]
    out["by_landmark"] = {k: {**v, "ci": cis["by_landmark"].get(k, {})} for k, v in result["by_landmark"].items()}
    return out


def true_risk_comparison(frame: pd.DataFrame, test: Mapping[str, Any], min_class_clients: int) -> dict:
    """The AUCs of the simulator's true risk on the same test rows, and model/true ratios.

    ``test``: the model's evaluation (``evaluate_scores``) on those rows.
    """
    model_auc, model_by_landmark = test["roc_auc"], test["by_landmark"]
    within = within_landmark_auc(frame, "true_risk", min_class_clients=min_class_clients, n_resamples=1)
    true_auc = roc_auc(frame["label"], frame["true_risk"])
    by_landmark = {}
    for landmark, rows in frame.groupby("landmark", sort=True):
        key = str(int(landmark))
        truth = roc_auc(rows["label"], rows["true_risk"])
        model = model_by_landmark.get(key, {}).get("roc_auc", float("nan"))
        by_landmark[key] = {"roc_auc": truth, "model_roc_auc": model, "ratio": model / truth}
    return {
        "within_landmark_auc": within.auc,
        "within_landmark_ratio": test["within_landmark_auc"] / within.auc,
        "roc_auc": true_auc,
        "ratio": model_auc / true_auc,
        "by_landmark": by_landmark,
    }


def subgroups(frame: pd.DataFrame, score: str) -> dict:
    scored = _as_risk(frame, score)
    if "age" in scored:
        scored = scored.assign(age_band=age_band(scored["age"]))
    return subgroup_metrics(scored, by=("gender", "age_band", "clinic_id"))
