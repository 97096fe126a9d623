"""Evaluation metrics for a dropout model: discrimination, calibration, clinical usefulness.

Everything here is a pure function of arrays or DataFrames. scikit-learn supplies ROC AUC,
PR AUC and the Brier score; this module adds what no library has: the calibration slope and
calibration-in-the-large, expected calibration error, decision-curve net benefit, top-k%
flagging, and how many sessions before the last attended one a dropout was first alerted.

Degenerate input never raises: an empty sample or a single outcome class gives NaN for the
metrics it leaves undefined. Malformed input (labels other than 0/1, scores outside [0, 1] or
missing, lengths that differ) raises ``ValueError`` naming the problem, never a value.

The same metrics for many bootstrap resamples at once are in ``training.evaluation.batched``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from dropout_risk.models.calibration_error import expected_calibration_error as calibration_error
from dropout_risk.training.evaluation.batched import batched_calibration_intercept, batched_calibration_slope

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3)


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------


def as_labels(y) -> np.ndarray:
    """0/1 labels as a float vector; anything else raises (without echoing values)."""
    arr = np.asarray(y)
    if arr.dtype == bool:
        return arr.astype(np.float64).ravel()
    try:
        arr = arr.astype(np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError("labels must be numeric 0/1") from None
    if arr.size and not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 (missing labels are not allowed)")
    return arr


def as_scores(p) -> np.ndarray:
    """Predicted probabilities as a float vector in [0, 1]; missing or out-of-range raises."""
    try:
        arr = np.asarray(p, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError("predicted risks must be numeric") from None
    if arr.size:
        if not np.isfinite(arr).all():
            raise ValueError(f"{int((~np.isfinite(arr)).sum())} predicted risk(s) are missing or infinite")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ValueError("predicted risks must lie within [0, 1]")
    return arr


def check_pair(y, p) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = as_labels(y), as_scores(p)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels and predicted risks differ in length ({y_arr.size} vs {p_arr.size})")
    return y_arr, p_arr


def _has_both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and 0.0 < y.sum() < y.size


def _threshold_key(t: float) -> str:
    return f"{float(t):g}"


def _fraction_key(fraction: float) -> str:
    return f"top{int(round(fraction * 100))}"


# ---------------------------------------------------------------------------------------------
# single-sample metrics
# ---------------------------------------------------------------------------------------------


def roc_auc(y, p) -> float:
    """ROC AUC (scikit-learn); NaN when empty or a single class."""
    y, p = check_pair(y, p)
    return float(roc_auc_score(y, p)) if _has_both_classes(y) else math.nan


def pr_auc(y, p) -> float:
    """Average precision (scikit-learn); NaN when empty or a single class."""
    y, p = check_pair(y, p)
    return float(average_precision_score(y, p)) if _has_both_classes(y) else math.nan


def brier(y, p) -> float:
    """Brier score (scikit-learn); NaN when empty."""
    y, p = check_pair(y, p)
    return float(brier_score_loss(y, p, labels=[0.0, 1.0])) if y.size else math.nan


def calibration_slope_intercept(y, p) -> tuple[float, float]:
    """Calibration slope and calibration-in-the-large, on logit(p) with p clipped to [1e-6, 1-1e-6].

    slope: coefficient of logit(p) in an unpenalised logistic regression of y on logit(p).
    intercept: intercept of a logistic model with logit(p) as an offset (slope fixed at 1);
    > 0 means risk is under-predicted on average, < 0 over-predicted.
    Perfect calibration gives (1, 0) in expectation. NaN when empty, a single class, or the
    fit has no finite solution (separation, all p equal).
    """
    y, p = check_pair(y, p)
    w = np.ones((1, y.size))
    slope = batched_calibration_slope(y, p, w)[0]
    intercept = batched_calibration_intercept(y, p, w)[0]
    return float(slope), float(intercept)


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Sum over equal-width bins of (bin share of rows) * |mean(y) - mean(p)|; NaN when empty.

    Bins match ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    y, p = check_pair(y, p)
    return calibration_error(y, p, n_bins)


def _check_thresholds(thresholds) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.size and (not np.isfinite(t).all() or t.min() < 0.0 or t.max() >= 1.0):
        raise ValueError("decision thresholds must lie within [0, 1)")
    return t


def net_benefit(y, p, thresholds) -> np.ndarray:
    """Decision-curve net benefit of treating rows with p >= t: TP/n - FP/n * t/(1-t)."""
    y, p = check_pair(y, p)
    t = _check_thresholds(thresholds)
    n = y.size
    if n == 0:
        return np.full(t.shape, np.nan)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    pos_at_or_above = np.r_[np.cumsum(y[order][::-1])[::-1], 0.0]  # positives among rows i..n-1
    first = np.searchsorted(ps, t, side="left")  # first row with p >= t
    flagged = n - first
    tp = pos_at_or_above[first]
    fp = flagged - tp
    return tp / n - fp / n * (t / (1.0 - t))


def net_benefit_treat_all(y, thresholds) -> np.ndarray:
    """Net benefit of treating everyone: prevalence - (1 - prevalence) * t/(1-t)."""
    y = as_labels(y)
    t = _check_thresholds(thresholds)
    if y.size == 0:
        return np.full(t.shape, np.nan)
    prev = y.mean()
    return prev - (1.0 - prev) * (t / (1.0 - t))


def top_fraction_metrics(y, p, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, float]:
    """Sensitivity and precision when the ceil(fraction * n) highest-risk rows are flagged.

    Ties at the cut-off are broken by row order (stable sort), so exactly that many rows are
    flagged. Keys: ``sensitivity_top10``, ``precision_top10``, ... Sensitivity is NaN without
    positives; everything is NaN for empty input.
    """
    y, p = check_pair(y, p)
    n = y.size
    out: dict[str, float] = {}
    order = np.argsort(-p, kind="stable")
    tp_cum = np.cumsum(y[order])
    n_pos = y.sum()
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise ValueError("flagged fractions must lie within (0, 1]")
        key = _fraction_key(fraction)
        if n == 0:
            out[f"sensitivity_{key}"] = out[f"precision_{key}"] = math.nan
            continue
        k = max(1, math.ceil(fraction * n - 1e-9))  # 1e-9: 0.1 * 30 is 3.0000000000000004
        tp = tp_cum[k - 1]
        out[f"sensitivity_{key}"] = float(tp / n_pos) if n_pos > 0 else math.nan
        out[f"precision_{key}"] = float(tp / k)
    return out


def alert_lead_time(
    frame: pd.DataFrame,
    threshold: float,
    *,
    client: str = "client_id",
    landmark: str = "landmark",
    score: str = "risk",
    label: str = "label",
    last_session: str = "last_session",
) -> dict:
    """How early dropouts were first alerted.

    For each dropout (label 1), the first landmark whose score >= threshold; its lead is
    ``last_session - first alert landmark`` (sessions attended after the first alert).
    Returns alerted_share (share of dropouts ever alerted), median/mean lead in sessions
    (NaN if none alerted), n_dropouts and n_alerted.
    """
    missing = [c for c in (client, landmark, score, label, last_session) if c not in frame.columns]
    if missing:
        raise ValueError(f"alert_lead_time needs column(s) {missing}")
    y = as_labels(frame[label])
    s = as_scores(frame[score])
    dropouts = frame.loc[y == 1.0, [client, landmark, last_session]]
    alerted = s[y == 1.0] >= threshold
    n_dropouts = int(dropouts[client].nunique())
    first_alert = dropouts.loc[alerted].groupby(client, sort=False)[landmark].min()
    last = dropouts.groupby(client, sort=False)[last_session].max()
    lead = (last.loc[first_alert.index] - first_alert).to_numpy(dtype=np.float64)
    return {
        "alerted_share": float(len(first_alert) / n_dropouts) if n_dropouts else math.nan,
        "median_lead_sessions": float(np.median(lead)) if lead.size else math.nan,
        "mean_lead_sessions": float(lead.mean()) if lead.size else math.nan,
        "n_dropouts": n_dropouts,
        "n_alerted": int(len(first_alert)),
    }


def binary_metrics(
    y,
    p,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    n_bins: int = 10,
) -> dict[str, float | dict]:
    """All row-level metrics of one sample, JSON-ready (str keys, Python floats)."""
    y, p = check_pair(y, p)
    slope, intercept = calibration_slope_intercept(y, p)
    out: dict[str, float | dict] = {
        "n_rows": int(y.size),
        "n_events": int(y.sum()),
        "prevalence": float(y.mean()) if y.size else math.nan,
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "brier": brier(y, p),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p, n_bins),
    }
    out.update(top_fraction_metrics(y, p, fractions))
    keys = [_threshold_key(t) for t in thresholds]
    out["net_benefit"] = dict(zip(keys, map(float, net_benefit(y, p, thresholds)), strict=True))
    out["net_benefit_treat_all"] = dict(zip(keys, map(float, net_benefit_treat_all(y, thresholds)), strict=True))
    return out


def landmark_key(value) -> str:
    """``str(landmark)`` with integral floats shown as integers (1.0 -> "1")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def evaluate(
    frame: pd.DataFrame,
    *,
    score: str = "risk",
    label: str = "label",
    client: str = "client_id",
    landmark: str = "landmark",
    alert_threshold: float | None = None,
    last_session: str = "last_session",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Pooled and per-landmark metrics of a scored landmark frame (one row per client and landmark).

    ``{"pooled": {...binary_metrics, n_clients[, alert lead time]}, "by_landmark": {"1": {...}, ...}}``.
    Lead-time keys (alert_threshold, alerted_share, median_lead_sessions, mean_lead_sessions,
    n_dropouts, n_alerted) are added to "pooled" when ``alert_threshold`` is given and the
    frame has a ``last_session`` column.
    """
    missing = [c for c in (score, label, client, landmark) if c not in frame.columns]
    if missing:
        raise ValueError(f"evaluate needs column(s) {missing}")
    pooled = binary_metrics(frame[label], frame[score], thresholds=thresholds)
    pooled["n_clients"] = int(frame[client].nunique())
    if alert_threshold is not None and last_session in frame.columns:
        pooled["alert_threshold"] = float(alert_threshold)
        pooled.update(
            alert_lead_time(
                frame,
                alert_threshold,
                client=client,
                landmark=landmark,
                score=score,
                label=label,
                last_session=last_session,
            )
        )
    by_landmark: dict[str, dict] = {}
    for value, rows in frame.groupby(landmark, sort=True):
        metrics = binary_metrics(rows[label], rows[score], thresholds=thresholds)
        metrics["n_clients"] = int(rows[client].nunique())
        by_landmark[landmark_key(value)] = metrics
    return {"pooled": pooled, "by_landmark": by_landmark}
