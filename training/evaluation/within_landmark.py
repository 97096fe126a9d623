"""Within-session discrimination: the mean of the per-landmark ROC AUCs, with a client-bootstrap CI.

A pooled AUC over landmark rows mixes sessions: later landmarks hold fewer eventual dropouts, so
the session number alone ranks rows well, and a model earns that AUC without telling clients at
the same session apart. Clinicians compare clients at the same point in treatment, so the primary
metric averages the ROC AUC computed *within* each landmark session.

A landmark counts only when each outcome has at least ``min_class_clients`` clients there (each
client has one row per landmark, so rows are clients); any other is listed with its reason
(``excluded``), never averaged in as a silent NaN. The CI resamples clients (a drawn client
brings all its landmark rows), re-computing the mean over the same evaluable landmarks; a
resample in which a landmark lost a class averages the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.training.evaluation.batched import BATCHED_METRICS, ResampleWeights
from dropout_risk.training.evaluation.bootstrap import client_codes, draw_clients, draw_counts, percentile_interval
from dropout_risk.training.evaluation.metrics import as_labels, as_scores

DEFAULT_MIN_CLASS_CLIENTS = 10


@dataclass(frozen=True)
class ExcludedLandmark:
    landmark: int
    reason: str


@dataclass(frozen=True)
class WithinLandmarkAUC:
    """The within-landmark AUC of one score, its CI, and which landmarks it covers."""

    auc: float
    ci: tuple[float, float]
    landmarks: tuple[int, ...]
    excluded: tuple[ExcludedLandmark, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "within_landmark_auc": _finite_or_none(self.auc),
            "within_landmark_auc_ci": [_finite_or_none(v) for v in self.ci],
            "evaluable_landmarks": list(self.landmarks),
            "excluded_landmarks": [{"landmark": e.landmark, "reason": e.reason} for e in self.excluded],
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluable_landmarks(
    frame: pd.DataFrame, min_class_clients: int, *, label: str = "label", landmark: str = "landmark"
) -> tuple[list[int], list[ExcludedLandmark]]:
    """Landmarks where both outcomes have ``min_class_clients`` clients, and the others with their reason."""
    counts = frame.groupby(landmark)[label].agg(events="sum", rows="count")
    included, excluded = [], []
    for value, row in counts.sort_index().iterrows():
        k, events, non_events = int(value), int(row["events"]), int(row["rows"] - row["events"])
        if events == 0 or non_events == 0:
            only = "completers" if events == 0 else "dropouts"
            excluded.append(ExcludedLandmark(k, f"only {only} reach session {k} (one outcome class)"))
        elif min(events, non_events) < min_class_clients:
            excluded.append(
                ExcludedLandmark(
                    k,
                    f"{events} dropouts and {non_events} completers at session {k}: fewer than "
                    f"{min_class_clients} clients in one class (evaluation.min_class_clients)",
                )
            )
        else:
            included.append(k)
    return included, excluded


def within_landmark_auc(
    frame: pd.DataFrame,
    score: str = "risk",
    *,
    min_class_clients: int = DEFAULT_MIN_CLASS_CLIENTS,
    n_resamples: int = 200,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> WithinLandmarkAUC:
    """The mean per-landmark ROC AUC of ``score`` over evaluable landmarks, with a client-bootstrap CI."""
    landmarks, excluded = evaluable_landmarks(frame, min_class_clients)
    point, resampled = _mean_auc(frame, [score], landmarks, n_resamples, seed)
    return WithinLandmarkAUC(
        auc=float(point[0]),
        ci=percentile_interval(resampled[0], confidence) if landmarks else (math.nan, math.nan),
        landmarks=tuple(landmarks),
        excluded=tuple(excluded),
    )


def paired_within_landmark_difference(
    frame: pd.DataFrame,
    score_a: str,
    score_b: str,
    *,
    min_class_clients: int = DEFAULT_MIN_CLASS_CLIENTS,
    n_resamples: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Within-landmark AUC of ``score_a`` minus ``score_b`` on the same resampled clients.

    ``{"delta", "ci": [lo, hi], "p_value", "a": auc_a, "b": auc_b, "landmarks": [...]}``; ``p_value``
    is two-sided and inverts the percentile interval as ``paired_bootstrap_difference``'s does.
    """
    landmarks, _ = evaluable_landmarks(frame, min_class_clients)
    point, resampled = _mean_auc(frame, [score_a, score_b], landmarks, n_resamples, seed)
    deltas = resampled[0] - resampled[1]
    ci = percentile_interval(deltas, confidence) if landmarks else (math.nan, math.nan)
    return {
        "delta": float(point[0] - point[1]),
        "ci": [float(ci[0]), float(ci[1])],
        "p_value": two_sided_p(deltas),
        "a": float(point[0]),
        "b": float(point[1]),
        "landmarks": landmarks,
    }


def two_sided_p(deltas: np.ndarray) -> float:
    """2 x the smaller share of resampled differences on either side of 0 (+1 corrected, at most 1)."""
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        return math.nan
    tail = min(np.sum(finite <= 0.0), np.sum(finite >= 0.0))
    return float(min(1.0, 2.0 * (tail + 1) / (finite.size + 1)))


def _mean_auc(
    frame: pd.DataFrame, scores: list[str], landmarks: list[int], n_resamples: int, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(point estimates per score, resampled estimates per score x resample), means over ``landmarks``."""
    if not landmarks:
        return np.full(len(scores), np.nan), np.full((len(scores), n_resamples), np.nan)
    y = as_labels(frame["label"])
    rows = [np.flatnonzero(frame["landmark"].to_numpy() == k) for k in landmarks]
    auc = BATCHED_METRICS["roc_auc"]
    values = [as_scores(frame[s]) for s in scores]
    point = np.array([np.mean([auc(y[r], p[r], np.ones((1, r.size)))[0] for r in rows]) for p in values])
    codes, n_clients = client_codes(frame, "client_id")
    weights = ResampleWeights(draw_counts(draw_clients(n_clients, n_resamples, seed), n_clients), codes)
    sums, counts = np.zeros((len(scores), n_resamples)), np.zeros((len(scores), n_resamples))
    for r in rows:
        w = weights.rows(r)
        for i, p in enumerate(values):
            resampled = auc(y[r], p[r], w)
            finite = np.isfinite(resampled)
            sums[i] += np.where(finite, resampled, 0.0)
            counts[i] += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return point, sums / counts
