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

_NEWTON_MAX_ITER = 50
_NEWTON_TOL = 1e-6  # stop once a step is this small; Newton converges quadratically, so the
#                     error left after applying that step is of order its square (~1e-12)
_NEWTON_MAX_STEP = 10.0
_HALVINGS = 30


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


def _sigmoid_into(eta: np.ndarray) -> np.ndarray:
    """In-place logistic function (exp/reciprocal: about twice as fast as scipy's expit)."""
    with np.errstate(over="ignore"):
        np.negative(eta, out=eta)
        np.exp(eta, out=eta)
    eta += 1.0
    return np.reciprocal(eta, out=eta)


def _two_class_mask(y: np.ndarray, w: ResampleWeights) -> np.ndarray:
    n_pos, n_all = w.sum(y), w.sum()
    return (n_pos > 0) & (n_pos < n_all)  # a single class sends the MLE to +-infinity


def _log_likelihood(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    eta = b[:, None] * x[None, :] + a[:, None]
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged fit gives NaN: judged as not worse
        return (w * (y[None, :] * eta - np.logaddexp(0.0, eta))).sum(axis=1)


def _newton_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray, fit_slope: bool) -> np.ndarray:
    """Unpenalised weighted logistic fits logit P(y) = a + b x, one per row of w.

    fit_slope=False fixes b = 1 (x is an offset). ``start`` is (a, b). Returns (n, 2) with NaN
    for fits that do not converge (separation) or have a singular information matrix.
    """
    n_fit = w.shape[0]
    a = np.full(n_fit, start[0])
    b = np.full(n_fit, start[1] if fit_slope else 1.0)
    features = np.stack([np.ones_like(x), x, x * x], axis=1)
    eta = np.empty_like(w)
    tmp = np.empty_like(w)
    converged = np.zeros(n_fit, dtype=bool)
    for _ in range(_NEWTON_MAX_ITER):
        np.multiply(b[:, None], x[None, :], out=eta)
        eta += a[:, None]
        mu = _sigmoid_into(eta)
        np.subtract(y[None, :], mu, out=tmp)
        tmp *= w
        grad = tmp @ features[:, :2]  # (n_fit, 2): sum w (y - mu) [1, x]
        np.subtract(1.0, mu, out=tmp)
        tmp *= mu
        tmp *= w
        info = tmp @ features  # sum w mu (1 - mu) [1, x, x^2]
        da, db = _newton_direction(grad, info, fit_slope)
        size = np.maximum(np.abs(da), np.abs(db))
        scale = np.where(size > _NEWTON_MAX_STEP, _NEWTON_MAX_STEP / np.where(size > 0, size, 1.0), 1.0)
        a, b = _halved_step(a, b, da, db, scale, x, y, w)
        converged = size < _NEWTON_TOL
        if (converged | ~np.isfinite(size)).all():
            break
    fit = np.stack([a, b], axis=1)
    fit[~converged] = np.nan
    return fit


def _newton_direction(grad: np.ndarray, info: np.ndarray, fit_slope: bool) -> tuple[np.ndarray, np.ndarray]:
    """The Newton step (da, db) of every fit; NaN where the information matrix is singular."""
    if fit_slope:
        h00, h01, h11 = info[:, 0], info[:, 1], info[:, 2]
        det = h00 * h11 - h01 * h01
        good = det > 1e-12 * np.maximum(h00 * h11, 1e-300)  # all x equal -> no slope
        safe = np.where(good, det, 1.0)
        da = np.where(good, (h11 * grad[:, 0] - h01 * grad[:, 1]) / safe, np.nan)
        db = np.where(good, (h00 * grad[:, 1] - h01 * grad[:, 0]) / safe, np.nan)
        return da, db
    h00 = info[:, 0]
    da = np.divide(grad[:, 0], h00, out=np.full(grad.shape[0], np.nan), where=h00 > 0)
    return da, np.zeros(grad.shape[0])


def _halved_step(
    a: np.ndarray,
    b: np.ndarray,
    da: np.ndarray,
    db: np.ndarray,
    scale: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) moved by ``scale`` times the step, halved for each fit whose likelihood it lowers.

    A full Newton step from (0, 1) overshoots and oscillates when the predictions are
    strongly over-confident, exactly the case the slope must catch.
    """
    before = _log_likelihood(a, b, x, y, w)
    for _ in range(_HALVINGS):
        new_a, new_b = a + scale * da, b + scale * db
        worse = _log_likelihood(new_a, new_b, x, y, w) < before - 1e-10 * np.abs(before)
        if not worse.any():
            break
        scale = np.where(worse, scale / 2, scale)
    return new_a, new_b


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
        full = _newton_logistic(x, y, np.ones((1, y.size)), start, fit_slope)[0]
        if np.isfinite(full).all():
            start = full
    dense = w.dense()[ok]
    out[ok] = _newton_logistic(x, y, dense, start, fit_slope)[:, 1 if fit_slope else 0]
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
