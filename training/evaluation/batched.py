"""Metrics for many resamples at once: one weighted evaluation per bootstrap resample.

Each resample is held as per-client draw counts (``ResampleWeights``). Weighted
metrics with integer weights equal the metric on the data with rows repeated,
so the client bootstrap in ``training.evaluation.bootstrap`` needs no copies of
the data. The calibration slope and intercept have one implementation here (the
batched Newton fit), which ``metrics.calibration_slope_intercept`` calls with
unit weights for a point estimate; the tests check every batched kernel against
the single-sample metric on rows repeated by their weights.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from dropout_risk.models.calibration import logit
from dropout_risk.models.calibration_error import calibration_bin_ids
from dropout_risk.models.logistic_fits import newton_logistic


class ResampleWeights:
    """Row weights of a block of resamples, kept as per-client draw counts.

    ``counts`` has shape (n_resamples, n_clients); ``codes[r]`` is the client of row r, so the
    weight of row r in resample b is ``counts[b, codes[r]]``. Sums over rows are done at client
    level (rows aggregated to clients once, then one product with ``counts``), which is far
    cheaper than materialising the (n_resamples, n_rows) weight matrix; ``dense()`` gives that
    matrix for the few metrics (the logistic calibration fits) that need it.
    A plain (n_resamples, n_rows) array is accepted everywhere as "every row its own client".
    """

    def __init__(self, counts: np.ndarray, codes: np.ndarray | None = None):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim == 1:
            counts = counts[None, :]
        self.counts = counts
        self.identity = codes is None
        self.codes = np.arange(counts.shape[1]) if codes is None else np.asarray(codes, dtype=np.intp)
        self.counts_t = np.ascontiguousarray(counts.T)  # (n_clients, n_resamples) for sparse products

    @property
    def n_resamples(self) -> int:
        return self.counts.shape[0]

    @property
    def n_rows(self) -> int:
        return self.codes.size

    def rows(self, index: np.ndarray) -> ResampleWeights:
        """The same resamples restricted to some rows (e.g. one landmark); shares the counts."""
        sub = ResampleWeights.__new__(ResampleWeights)
        sub.counts, sub.counts_t, sub.identity = self.counts, self.counts_t, False
        sub.codes = self.codes[index]
        return sub

    def dense(self) -> np.ndarray:
        return self.counts if self.identity else self.counts[:, self.codes]

    def sum(self, values: np.ndarray | None = None) -> np.ndarray:
        """Weighted sum over rows of ``values`` (all ones if None), per resample."""
        per_client = np.bincount(self.codes, weights=values, minlength=self.counts.shape[1])
        return self.counts @ per_client

    def sum_by(self, column: np.ndarray, values: np.ndarray, n_columns: int) -> np.ndarray:
        """Weighted sums of ``values`` within each of ``n_columns`` row groups.

        Shape (n_columns, n_resamples), C-ordered: group-wise cumulative sums run down axis 0.
        """
        per_client = sparse.csr_matrix(
            (values, (column, self.codes)), shape=(n_columns, self.counts.shape[1])
        )  # duplicates add up
        return np.asarray(per_client @ self.counts_t)


def as_weights(w, n_rows: int) -> ResampleWeights:
    if isinstance(w, ResampleWeights):
        weights = w
    else:
        weights = ResampleWeights(np.asarray(w, dtype=np.float64))
    if weights.n_rows != n_rows:
        raise ValueError(f"weights cover {weights.n_rows} rows, data has {n_rows}")
    return weights


def _tie_groups(p: np.ndarray, descending: bool) -> tuple[np.ndarray, int]:
    """Index of each row's run of tied scores, runs ordered by score; and the number of runs."""
    uniques, inverse = np.unique(p, return_inverse=True)
    if descending:
        inverse = uniques.size - 1 - inverse
    return inverse, uniques.size


def _class_weights_by_score(y, p, w: ResampleWeights, descending: bool):
    groups, n_groups = _tie_groups(p, descending)
    pos = w.sum_by(groups, y, n_groups)
    neg = w.sum_by(groups, 1.0 - y, n_groups)
    return pos, neg


def _batched_roc_auc(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count 1/2), one value per resample."""
    w = as_weights(w, y.size)
    if y.size == 0:
        return np.full(w.n_resamples, np.nan)
    pos, neg = _class_weights_by_score(y, p, w, descending=False)  # (score runs, resamples)
    neg_below = np.cumsum(neg, axis=0) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=0)
    denom = pos.sum(axis=0) * neg.sum(axis=0)
    return np.divide(num, denom, out=np.full(w.n_resamples, np.nan), where=denom > 0)


def _batched_average_precision(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Weighted average precision as scikit-learn defines it (step-wise, no interpolation)."""
    w = as_weights(w, y.size)
    if y.size == 0:
        return np.full(w.n_resamples, np.nan)
    pos, neg = _class_weights_by_score(y, p, w, descending=True)  # (score runs, resamples)
    tp = np.cumsum(pos, axis=0)
    flagged = tp + np.cumsum(neg, axis=0)
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    n_pos = pos.sum(axis=0)
    n_neg = neg.sum(axis=0)
    ap = np.divide((pos * precision).sum(axis=0), n_pos, out=np.full(w.n_resamples, np.nan), where=n_pos > 0)
    ap[n_neg <= 0] = np.nan  # a single class leaves PR AUC uninformative (trivially 1)
    return ap


def _batched_mean(values: np.ndarray, w) -> np.ndarray:
    w = as_weights(w, values.size)
    total = w.sum()
    return np.divide(w.sum(values), total, out=np.full(w.n_resamples, np.nan), where=total > 0)


def _batched_brier(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    return _batched_mean((p - y) ** 2, w)


def _batched_ece(y: np.ndarray, p: np.ndarray, w, n_bins: int = 10) -> np.ndarray:
    w = as_weights(w, y.size)
    # sum_b (W_b / W) |mean_b(y) - mean_b(p)|  ==  sum_b |sum_{rows in b} w (y - p)| / W
    gap = np.abs(w.sum_by(calibration_bin_ids(p, n_bins), y - p, n_bins)).sum(axis=0)
    total = w.sum()
    return np.divide(gap, total, out=np.full(w.n_resamples, np.nan), where=total > 0)


def _two_class_mask(y: np.ndarray, w: ResampleWeights) -> np.ndarray:
    n_pos, n_all = w.sum(y), w.sum()
    return (n_pos > 0) & (n_pos < n_all)  # a single class sends the MLE to +-infinity


def _batched_logistic(y: np.ndarray, p: np.ndarray, w, fit_slope: bool) -> np.ndarray:
    w = as_weights(w, y.size)
    out = np.full(w.n_resamples, np.nan)
    if y.size == 0:
        return out
    ok = _two_class_mask(y, w)
    if not ok.any():
        return out
    x = logit(p)
    start = np.array([0.0, 1.0])  # perfect calibration
    if w.n_resamples > 1:
        # resamples sit close to the unweighted fit: starting there saves Newton iterations
        full = newton_logistic(x, y, np.ones((1, y.size)), start, fit_slope)[0]
        if np.isfinite(full).all():
            start = full
    dense = w.dense()[ok]
    out[ok] = newton_logistic(x, y, dense, start, fit_slope)[:, 1 if fit_slope else 0]
    return out


def batched_calibration_slope(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Slope b of logit P(y=1) = a + b logit(p), unpenalised, by Newton's method."""
    return _batched_logistic(y, p, w, fit_slope=True)


def batched_calibration_intercept(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Intercept a of logit P(y=1) = a + logit(p) (offset model), by Newton's method."""
    return _batched_logistic(y, p, w, fit_slope=False)


BATCHED_METRICS = {
    "roc_auc": _batched_roc_auc,
    "pr_auc": _batched_average_precision,
    "brier": _batched_brier,
    "calibration_slope": batched_calibration_slope,
    "calibration_intercept": batched_calibration_intercept,
    "ece": _batched_ece,
    "prevalence": lambda y, p, w: _batched_mean(y, w),
    "mean_predicted": lambda y, p, w: _batched_mean(p, w),
}
"""Metrics that ``training.evaluation.bootstrap`` can evaluate for many resamples in one pass."""
