"""How well served risks matched what happened: O/E, calibration line, ECE, within-session AUC.

Pure functions of arrays, one row per client and landmark session at which a risk was served
(``y`` the episode's outcome, 1 = dropout; ``p`` the risk served; ``client`` a client code;
``landmark`` the session). They live below serving and training because both need them and
neither may import the other: monitoring (serving) reads served risks from its database;
``training.evaluation`` has its own bootstrap-based versions for held-out test data.

Each row counts the client once per session, so a client's rows are correlated: the O/E
interval is a cluster-robust (sandwich) one, clients being the clusters. The within-session
AUC is the mean of each landmark's Mann-Whitney AUC over landmarks where both outcomes have at
least ``min_class`` clients; its interval uses Hanley & McNeil's standard error per landmark
and, for the mean, the mean of those errors (as if the landmarks were perfectly correlated:
wider than any correlation the same clients give, so "entirely below" is not claimed lightly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.special import logit

from dropout_risk.models.logistic_fits import newton_logistic

EPS = 1e-6


def _two_sided_z(confidence: float) -> float:
    """The normal quantile of a two-sided interval at ``confidence`` (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Ratio:
    observed: float
    expected: float
    ratio: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class CalibrationLine:
    slope: float
    intercept: float  # calibration-in-the-large: the intercept with logit(p) as offset


@dataclass(frozen=True)
class WithinAUC:
    auc: float
    ci: tuple[float, float]
    landmarks: tuple[int, ...]


def observed_expected(y: np.ndarray, p: np.ndarray, client: np.ndarray, confidence: float = 0.95) -> Ratio:
    """Observed over expected dropouts, with a client-clustered interval on the log scale (none for one client)."""
    observed, expected = float(y.sum()), float(p.sum())
    if expected <= 0 or observed <= 0:
        ratio = observed / expected if expected > 0 else math.nan
        return Ratio(observed, expected, ratio, (math.nan, math.nan))
    ratio = observed / expected
    _, codes = np.unique(client, return_inverse=True)
    if codes.max() < 1:  # one client: the clustered variance is zero by construction, not a measurement
        return Ratio(observed, expected, ratio, (math.nan, math.nan))
    residual = np.bincount(codes, weights=y - ratio * p)
    se_log = math.sqrt(float(np.sum(residual**2))) / observed
    z = _two_sided_z(confidence)
    return Ratio(observed, expected, ratio, (ratio * math.exp(-z * se_log), ratio * math.exp(z * se_log)))


def logistic_update(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(a, b) of logit P(y) = a + b * x by maximum likelihood; NaN when no finite fit exists (separation)."""
    a, b = newton_logistic(x, y.astype(float), np.ones((1, y.size)), np.array([0.0, 1.0]), fit_slope=True)[0]
    return float(a), float(b)


def calibration_line(y: np.ndarray, p: np.ndarray) -> CalibrationLine:
    """Logistic recalibration of the outcome on logit(p): slope, and the intercept with the slope fixed at 1."""
    if y.size == 0 or y.min() == y.max():
        return CalibrationLine(math.nan, math.nan)
    x = logit(np.clip(p, EPS, 1 - EPS))
    return CalibrationLine(logistic_update(y, x)[1], intercept_shift(y, x))


def intercept_shift(y: np.ndarray, offset: np.ndarray) -> float:
    """The intercept a of logit P(y) = a + offset by maximum likelihood; NaN when no finite fit exists."""
    start = np.array([0.0, 1.0])
    return float(newton_logistic(offset, y.astype(float), np.ones((1, y.size)), start, fit_slope=False)[0, 0])


def auc_with_se(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Mann-Whitney ROC AUC (ties count half) and its Hanley-McNeil standard error."""
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    from scipy.stats import rankdata  # scipy.stats is about a second of the server's start: only a check needs it

    ranks = rankdata(p)
    auc = (float(ranks[y == 1].sum()) - positives * (positives + 1) / 2) / (positives * negatives)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return auc, math.sqrt(max(variance, 0.0))


def within_landmark_auc(
    y: np.ndarray, p: np.ndarray, landmark: np.ndarray, min_class: int, confidence: float = 0.95
) -> WithinAUC:
    """The mean per-landmark AUC over landmarks with ``min_class`` clients of each outcome, and its interval."""
    aucs, errors, used = [], [], []
    for k in np.unique(landmark):
        rows = landmark == k
        events = int(y[rows].sum())
        if min(events, int(rows.sum()) - events) < min_class:
            continue
        auc, se = auc_with_se(y[rows], p[rows])
        aucs.append(auc)
        errors.append(se)
        used.append(int(k))
    if not aucs:
        return WithinAUC(math.nan, (math.nan, math.nan), ())
    mean, se = float(np.mean(aucs)), float(np.mean(errors))
    z = _two_sided_z(confidence)
    return WithinAUC(mean, (mean - z * se, mean + z * se), tuple(used))
