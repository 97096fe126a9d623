"""Within-landmark AUC of out-of-fold risks, comparing only clients scored by the same fitted model.

Pooling out-of-fold risks across folds compares clients scored by different models, whose levels
differ: with few clients per fold that biases the AUC (a fold's rates exclude its own clients, so
even the session-number rate ranks them backwards: 0.395 instead of 0.5 on a 172-client trial).
Here a pair of clients counts only within one stratum (a repeat's fold, at one landmark); each
landmark's AUC pools the pairs of its strata, and the mean over the evaluable landmarks (decided
on the clients, as ``within_landmark.within_landmark_auc``) is the figure. The CI resamples
clients, each drawn client bringing all its rows in every stratum. ``train``'s small-data mode
and ``compare`` both judge out-of-fold risks this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.training.evaluation.bootstrap import client_codes, draw_clients, draw_counts, percentile_interval
from dropout_risk.training.evaluation.within_landmark import (
    DEFAULT_MIN_CLASS_CLIENTS,
    WithinLandmarkAUC,
    evaluable_landmarks,
    two_sided_p,
)

STRATA = ("repeat", "fold")


def _weighted_concordance(s_pos: np.ndarray, s_neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """Sum over (dropout, completer) pairs of concordance x both clients' draw counts, per resample."""
    concordant = (s_pos[:, None] > s_neg[None, :]) + 0.5 * (s_pos[:, None] == s_neg[None, :])
    return np.sum((w_pos @ concordant) * w_neg, axis=1)


def _stratified_means(
    oof: pd.DataFrame,
    scores: list[str],
    landmarks: list[int],
    strata: tuple[str, ...],
    n_resamples: int,
    seed: int | None,
) -> np.ndarray:
    """Mean over ``landmarks`` of each score's stratified AUC: (scores, 1 + resamples), column 0 the point."""
    codes, n_clients = client_codes(oof, "client_id")
    counts = np.vstack([np.ones(n_clients), draw_counts(draw_clients(n_clients, n_resamples, seed), n_clients)])
    totals = np.zeros((len(scores), len(landmarks), counts.shape[0]))
    pairs = np.zeros((len(landmarks), counts.shape[0]))
    position = {k: i for i, k in enumerate(landmarks)}
    labels = oof["label"].to_numpy() == 1
    values = [oof[s].to_numpy(dtype=float) for s in scores]
    for keys, rows in oof.groupby([*strata, "session_number"], sort=False).indices.items():
        i = position.get(int(keys[-1]))
        y = labels[rows]
        if i is None or y.all() or not y.any():
            continue
        w_pos, w_neg = counts[:, codes[rows][y]], counts[:, codes[rows][~y]]
        pairs[i] += w_pos.sum(axis=1) * w_neg.sum(axis=1)
        for j, v in enumerate(values):
            totals[j, i] += _weighted_concordance(v[rows][y], v[rows][~y], w_pos, w_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(totals / pairs[None], axis=1)


def _landmarks(oof: pd.DataFrame, min_class_clients: int) -> tuple[list[int], list]:
    per_client = oof.drop_duplicates(["client_id", "session_number"]).rename(columns={"session_number": "landmark"})
    return evaluable_landmarks(per_client, min_class_clients)


def stratified_within_landmark_auc(
    oof: pd.DataFrame,
    score: str,
    *,
    strata: tuple[str, ...] = STRATA,
    min_class_clients: int = DEFAULT_MIN_CLASS_CLIENTS,
    n_resamples: int = 200,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> WithinLandmarkAUC:
    """The within-landmark AUC of ``score`` in ``oof`` (client_id, session_number, label, strata), with its CI."""
    landmarks, excluded = _landmarks(oof, min_class_clients)
    if not landmarks:
        return WithinLandmarkAUC(math.nan, (math.nan, math.nan), (), tuple(excluded))
    (mean,) = _stratified_means(oof, [score], landmarks, strata, n_resamples, seed)
    return WithinLandmarkAUC(
        auc=float(mean[0]),
        ci=percentile_interval(mean[1:], confidence),
        landmarks=tuple(landmarks),
        excluded=tuple(excluded),
    )


@dataclass(frozen=True)
class StratifiedResamples:
    """Several scores' stratified within-landmark AUCs on the same resampled clients (``scores`` x 1 + resamples)."""

    scores: tuple[str, ...]
    means: np.ndarray  # column 0: the point estimates
    landmarks: tuple[int, ...]

    def paired(self, score_a: str, score_b: str, confidence: float = 0.95) -> dict[str, Any]:
        """As ``within_landmark.paired_within_landmark_difference``: delta, ci, p_value, a, b, landmarks."""
        if not self.landmarks:
            nan = math.nan
            return {"delta": nan, "ci": [nan, nan], "p_value": nan, "a": nan, "b": nan, "landmarks": []}
        a, b = self.means[self.scores.index(score_a)], self.means[self.scores.index(score_b)]
        deltas = a[1:] - b[1:]
        ci = percentile_interval(deltas, confidence)
        return {
            "delta": float(a[0] - b[0]),
            "ci": [float(ci[0]), float(ci[1])],
            "p_value": two_sided_p(deltas),
            "a": float(a[0]),
            "b": float(b[0]),
            "landmarks": list(self.landmarks),
        }


def stratified_resamples(
    oof: pd.DataFrame,
    scores: list[str],
    *,
    strata: tuple[str, ...] = STRATA,
    min_class_clients: int = DEFAULT_MIN_CLASS_CLIENTS,
    n_resamples: int = 1000,
    seed: int | None = 0,
) -> StratifiedResamples:
    """Every score's figure on the same resamples, computed once: any pair's difference is then a subtraction."""
    landmarks, _ = _landmarks(oof, min_class_clients)
    if not landmarks:
        return StratifiedResamples(tuple(scores), np.full((len(scores), n_resamples + 1), np.nan), ())
    means = _stratified_means(oof, scores, landmarks, strata, n_resamples, seed)
    return StratifiedResamples(tuple(scores), means, tuple(landmarks))
