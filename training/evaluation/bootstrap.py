"""Client-clustered bootstrap confidence intervals.

A client contributes one row per landmark session, so rows are not independent: every
resample draws CLIENTS with replacement and a drawn client brings all of its rows (drawn
twice, twice). Intervals are percentile intervals; resamples in which a metric is undefined
(NaN, e.g. a single outcome class) are dropped for that metric only.

The ECE is the exception (``RECENTRED_METRICS``). It sums absolute gaps, so sampling noise
only ever adds to it: a resample's ECE sits above the estimate it was drawn from, often by more
than the spread of the resamples, and a percentile interval then lies wholly above the
estimate (on a 150-client trial, in 3 of 20 seeds pooled and in most seeds at some landmark).
Its interval is the percentile interval of the resampled ECEs shifted by their median
excess over the estimate (``recentred_interval``): the spread of the estimate, centred on it,
so the interval always contains it. The estimate itself is biased upward, so the interval
is conservative against a maximum ECE (it errs towards "miscalibrated").

Two routes share one random draw, so with the same seed they resample the same clients:

* ``client_bootstrap`` -- any statistic of a DataFrame. Builds each resampled frame (rows
  gathered through precomputed per-client row positions; each drawn copy of a client gets its
  own id so per-client statistics see distinct clients).
* ``bootstrap_metric_cis`` / ``paired_bootstrap_difference`` -- the fast path used in
  training. A resample is a vector of per-client draw counts (``np.bincount``); row weights are
  the counts of each row's client. Weighted metrics with integer weights equal the metrics on
  the resampled rows, and ``training.evaluation.metrics`` evaluates them for a whole block of resamples in
  one vectorised pass (rank and bin sums at client level, via sparse products).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from dropout_risk.training.evaluation.batched import BATCHED_METRICS, ResampleWeights
from dropout_risk.training.evaluation.metrics import as_labels, as_scores, landmark_key

DEFAULT_METRICS = ("roc_auc", "pr_auc", "brier", "calibration_slope", "ece")
#: metrics whose resamples are biased away from the estimate: interval recentred on the estimate
RECENTRED_METRICS = ("ece",)
PAIRED_METRICS = ("roc_auc", "pr_auc", "brier")
#: resamples x rows held in one weight block (~16 MB of float64), bounding memory on big frames
_BLOCK_CELLS = 2_000_000


def client_codes(frame: pd.DataFrame, client: str = "client_id") -> tuple[np.ndarray, int]:
    """Integer code of each row's client (clients in sorted order) and the number of clients."""
    if client not in frame.columns:
        raise ValueError(f"client column {client!r} not found")
    if frame[client].isna().any():
        raise ValueError(f"client column {client!r} has missing values")
    codes, uniques = pd.factorize(frame[client], sort=True)
    return codes.astype(np.intp), len(uniques)


def draw_clients(n_clients: int, n_resamples: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """(n_resamples, n_clients) client indices drawn with replacement; the one draw both routes use."""
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_clients, size=(n_resamples, n_clients))


def draw_counts(draws: np.ndarray, n_clients: int) -> np.ndarray:
    """How many times each client was drawn in each resample, shape (n_resamples, n_clients)."""
    n_res = draws.shape[0]
    offsets = (np.arange(n_res) * n_clients)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_res * n_clients).reshape(n_res, n_clients)


def percentile_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite values; (NaN, NaN) when there are none."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie within (0, 1)")
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(arr, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return (float(lo), float(hi))


def recentred_interval(values, estimate: float, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``values`` shifted by their median excess over ``estimate``, floored at 0.

    For a non-negative metric whose resamples are biased upward (the ECE): the shifted median
    is the estimate, so the interval contains it whenever both are finite.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0 or not math.isfinite(estimate):
        return (math.nan, math.nan)
    lo, hi = percentile_interval(arr, confidence)
    excess = float(np.median(arr)) - estimate
    return (max(0.0, lo - excess), max(0.0, hi - excess))


def _interval(metric: str, values, estimate: float, confidence: float) -> tuple[float, float]:
    if metric in RECENTRED_METRICS:
        return recentred_interval(values, estimate, confidence)
    return percentile_interval(values, confidence)


def _as_metric_dict(value) -> dict[str, float]:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    return {"value": float(value)}


def client_bootstrap(
    frame: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], dict[str, float] | float],
    *,
    client: str = "client_id",
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile CI of each metric ``statistic`` returns, resampling clients with replacement.

    ``statistic`` gets a resampled frame (index reset; the client column holds one integer id
    per drawn copy of a client) and returns a dict of floats, or one float (reported under
    the key "value"). Keys absent from a resample's result count as NaN for it. A key in
    ``RECENTRED_METRICS`` ("ece") gets the recentred interval around ``statistic(frame)``.
    """
    codes, n_clients = client_codes(frame, client)
    estimate = _as_metric_dict(statistic(frame))
    if n_clients == 0:
        return {key: (math.nan, math.nan) for key in estimate}
    draws = draw_clients(n_clients, n_resamples, seed)
    order = np.argsort(codes, kind="stable")  # rows grouped by client
    lengths = np.bincount(codes, minlength=n_clients)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    results: list[dict[str, float]] = []
    for drawn in draws:
        lens = lengths[drawn]
        ends = np.cumsum(lens)
        # position within the grouped order: start of the drawn client + offset within it
        within = np.arange(ends[-1]) - np.repeat(ends - lens, lens)
        rows = order[np.repeat(starts[drawn], lens) + within]
        sample = frame.iloc[rows].reset_index(drop=True)
        sample[client] = np.repeat(np.arange(n_clients), lens)
        results.append(_as_metric_dict(statistic(sample)))
    keys = list(dict.fromkeys(k for r in results for k in r))
    return {k: _interval(k, [r.get(k, math.nan) for r in results], estimate.get(k, math.nan), confidence) for k in keys}


def _blocks(n_resamples: int, n_rows: int):
    size = max(1, _BLOCK_CELLS // max(n_rows, 1))
    for start in range(0, n_resamples, size):
        yield slice(start, min(start + size, n_resamples))


def _check_metrics(metrics: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise ValueError(f"no bootstrap for metric(s) {unknown}; choose from {sorted(allowed)}")


def bootstrap_metric_cis(
    frame: pd.DataFrame,
    *,
    score: str = "risk",
    label: str = "label",
    client: str = "client_id",
    landmark: str = "landmark",
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> dict:
    """Client-bootstrap CIs of row-level metrics, pooled and per landmark, from the same resamples.

    ``{"pooled": {metric: [lo, hi]}, "by_landmark": {"1": {metric: [lo, hi]}, ...}}``.
    Metrics: any of roc_auc, pr_auc, brier, calibration_slope, calibration_intercept, ece,
    prevalence, mean_predicted. Gives the same intervals as ``client_bootstrap`` with the
    corresponding ``training.evaluation.metrics`` functions and the same seed, without copying rows
    (the ECE's interval recentred on its estimate, as there).
    """
    _check_metrics(metrics, tuple(BATCHED_METRICS))
    missing = [c for c in (score, label, client, landmark) if c not in frame.columns]
    if missing:
        raise ValueError(f"bootstrap_metric_cis needs column(s) {missing}")
    y = as_labels(frame[label])
    p = as_scores(frame[score])
    codes, n_clients = client_codes(frame, client)
    groups: dict[str, np.ndarray] = {"pooled": np.arange(len(frame))}
    landmark_codes, landmark_values = pd.factorize(frame[landmark], sort=True)
    for i, value in enumerate(landmark_values):
        groups[landmark_key(value)] = np.flatnonzero(landmark_codes == i)
    values = {g: {m: np.full(n_resamples, np.nan) for m in metrics} for g in groups}
    unit = np.ones((1, len(frame)))
    estimates = {
        g: {m: float(BATCHED_METRICS[m](y[rows], p[rows], unit[:, rows])[0]) for m in metrics if m in RECENTRED_METRICS}
        for g, rows in groups.items()
    }
    if n_clients:
        counts = draw_counts(draw_clients(n_clients, n_resamples, seed), n_clients)
        for block in _blocks(n_resamples, len(frame)):
            block_weights = ResampleWeights(counts[block], codes)
            for g, rows in groups.items():
                w = block_weights if g == "pooled" else block_weights.rows(rows)
                for m in metrics:
                    values[g][m][block] = BATCHED_METRICS[m](y[rows], p[rows], w)

    def cis(g: str) -> dict[str, list[float]]:
        return {m: list(_interval(m, values[g][m], estimates[g].get(m, math.nan), confidence)) for m in metrics}

    return {"pooled": cis("pooled"), "by_landmark": {g: cis(g) for g in groups if g != "pooled"}}


def paired_bootstrap_difference(
    frame: pd.DataFrame,
    score_a: str,
    score_b: str,
    *,
    label: str = "label",
    client: str = "client_id",
    n_resamples: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    metric: str = "roc_auc",
) -> dict:
    """metric(score_a) - metric(score_b) on the same resampled clients (default: ROC AUC).

    Returns {"delta": point estimate, "ci": [lo, hi] (percentile), "p_value": two-sided
    bootstrap p, "n_resamples_used"}. The p-value inverts the percentile interval:
    2 * min(share of resampled deltas <= 0, share >= 0), with a +1 correction so it is never 0,
    capped at 1. Identical scores give delta 0 and p 1.
    """
    _check_metrics([metric], PAIRED_METRICS)
    missing = [c for c in (score_a, score_b, label, client) if c not in frame.columns]
    if missing:
        raise ValueError(f"paired_bootstrap_difference needs column(s) {missing}")
    y = as_labels(frame[label])
    pa, pb = as_scores(frame[score_a]), as_scores(frame[score_b])
    fn = BATCHED_METRICS[metric]
    unit = np.ones((1, y.size))
    delta = float((fn(y, pa, unit) - fn(y, pb, unit))[0])
    codes, n_clients = client_codes(frame, client)
    deltas = np.full(n_resamples, np.nan)
    if n_clients:
        counts = draw_counts(draw_clients(n_clients, n_resamples, seed), n_clients)
        for block in _blocks(n_resamples, len(frame)):
            w = ResampleWeights(counts[block], codes)
            deltas[block] = fn(y, pa, w) - fn(y, pb, w)
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        return {"delta": delta, "ci": [math.nan, math.nan], "p_value": math.nan, "n_resamples_used": 0}
    tail = min(np.sum(finite <= 0.0), np.sum(finite >= 0.0))
    p_value = min(1.0, 2.0 * (tail + 1) / (finite.size + 1))
    return {
        "delta": delta,
        "ci": list(percentile_interval(finite, confidence)),
        "p_value": float(p_value),
        "n_resamples_used": int(finite.size),
    }
