"""Evaluation metrics for a dropout model: discrimination, calibration, clinical usefulness.

Everything here is a pure function of arrays or DataFrames. scikit-learn supplies ROC AUC,
PR AUC and the Brier score; this module adds what no library has: the calibration slope and
calibration-in-the-large, expected calibration error, decision-curve net benefit, top-k%
flagging, and how many sessions before the last attended one a dropout was first alerted.

Degenerate input never raises: an empty sample or a single outcome class gives NaN for the
metrics it leaves undefined. Malformed input (labels other than 0/1, scores outside [0, 1] or
missing, lengths that differ) raises ``ValueError`` naming the problem, never a value.

The ``_batched_*`` helpers (collected in ``BATCHED_METRICS``) evaluate a metric for many weight
vectors at once: one per bootstrap resample, held as per-client draw counts
(``ResampleWeights``). Weighted metrics with integer weights equal the metric on the data with
rows repeated, so the client bootstrap in ``training.evaluation.bootstrap`` needs no copies of the data.
The calibration slope and intercept have one implementation (the batched Newton fit, called
with unit weights for a point estimate); the tests check every batched kernel against the
single-sample metric on rows repeated by their weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

P_CLIP = 1e-6
DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3)
_NEWTON_MAX_ITER = 50
_NEWTON_TOL = 1e-6  # stop once a step is this small; Newton converges quadratically, so the
#                     error left after applying that step is of order its square (~1e-12)
_NEWTON_MAX_STEP = 10.0
_HALVINGS = 30


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


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, P_CLIP, 1.0 - P_CLIP)
    return np.log(p) - np.log1p(-p)


def _threshold_key(t: float) -> str:
    return f"{float(t):g}"


def _fraction_key(fraction: float) -> str:
    return f"top{int(round(fraction * 100))}"


# ---------------------------------------------------------------------------------------------
# batched (weighted) kernels
# ---------------------------------------------------------------------------------------------


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


def calibration_bin_ids(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1], assigned exactly as sklearn's ``calibration_curve`` does."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p)


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
        if fit_slope:
            h00, h01, h11 = info[:, 0], info[:, 1], info[:, 2]
            det = h00 * h11 - h01 * h01
            good = det > 1e-12 * np.maximum(h00 * h11, 1e-300)  # all x equal -> no slope
            safe = np.where(good, det, 1.0)
            da = np.where(good, (h11 * grad[:, 0] - h01 * grad[:, 1]) / safe, np.nan)
            db = np.where(good, (h00 * grad[:, 1] - h01 * grad[:, 0]) / safe, np.nan)
        else:
            h00 = info[:, 0]
            da = np.divide(grad[:, 0], h00, out=np.full(n_fit, np.nan), where=h00 > 0)
            db = np.zeros(n_fit)
        size = np.maximum(np.abs(da), np.abs(db))
        scale = np.where(size > _NEWTON_MAX_STEP, _NEWTON_MAX_STEP / np.where(size > 0, size, 1.0), 1.0)
        # Step-halving: a full Newton step from (0, 1) overshoots and oscillates when the
        # predictions are strongly over-confident, exactly the case the slope must catch.
        before = _log_likelihood(a, b, x, y, w)
        for _ in range(_HALVINGS):
            new_a, new_b = a + scale * da, b + scale * db
            worse = _log_likelihood(new_a, new_b, x, y, w) < before - 1e-10 * np.abs(before)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        a, b = new_a, new_b
        converged = size < _NEWTON_TOL
        if (converged | ~np.isfinite(size)).all():
            break
    fit = np.stack([a, b], axis=1)
    fit[~converged] = np.nan
    return fit


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


def _batched_calibration_slope(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Slope b of logit P(y=1) = a + b logit(p), unpenalised, by Newton's method."""
    return _batched_logistic(y, p, w, fit_slope=True)


def _batched_calibration_intercept(y: np.ndarray, p: np.ndarray, w) -> np.ndarray:
    """Intercept a of logit P(y=1) = a + logit(p) (offset model), by Newton's method."""
    return _batched_logistic(y, p, w, fit_slope=False)


BATCHED_METRICS = {
    "roc_auc": _batched_roc_auc,
    "pr_auc": _batched_average_precision,
    "brier": _batched_brier,
    "calibration_slope": _batched_calibration_slope,
    "calibration_intercept": _batched_calibration_intercept,
    "ece": _batched_ece,
    "prevalence": lambda y, p, w: _batched_mean(y, w),
    "mean_predicted": lambda y, p, w: _batched_mean(p, w),
}
"""Metrics that ``training.evaluation.bootstrap`` can evaluate for many resamples in one pass."""


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
    slope = _batched_calibration_slope(y, p, w)[0]
    intercept = _batched_calibration_intercept(y, p, w)[0]
    return float(slope), float(intercept)


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Sum over equal-width bins of (bin share of rows) * |mean(y) - mean(p)|; NaN when empty.

    Bins match ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    y, p = check_pair(y, p)
    if y.size == 0:
        return math.nan
    bins = calibration_bin_ids(p, n_bins)
    gap = np.bincount(bins, weights=y - p, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)


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
