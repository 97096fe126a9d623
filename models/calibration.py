"""Calibrators fitted on out-of-fold predictions.

``sigmoid`` (the default) is Platt scaling on the logit with one slope shared by every landmark
and an intercept per landmark: calibrated log-odds = ``slope`` * raw log-odds + the landmark's
intercept. A model's out-of-fold predictions can be off at some sessions in different directions
(under-predicted at one, over-predicted at another), which one pooled intercept cannot fix. The
slope is shared: it keeps the ranking of clients within a session
exactly (the within-session AUC cannot move), and it rescales every feature's contribution by one
number, so the concept explanation stays exact.

The per-landmark intercepts (from a joint fit with the shared slope) are shrunk towards the
pooled one (``shrink_towards``, empirical Bayes) by as much as their differences are noise, and
the slope and pooled intercept are then refitted with those shrunk distances as offsets: when
no landmark differs beyond noise, the result is plain two-parameter Platt scaling, exactly. The
sign-constrained logistic, which has a term per session number, is usually calibrated within
each session already (on 4,000 simulated training clients the per-landmark intercepts did not
improve the out-of-fold fit: likelihood ratio 1.5-2.8 on 7 degrees of freedom over four seeds),
and unshrunk intercepts would only add their own noise to every risk. A landmark with fewer
than ``min_class_rows`` dropouts or completers among its rows gets the pooled intercept outright.
Without landmarks (``landmark=None``) the fit is plain two-parameter Platt scaling.

``isotonic`` is there for large cohorts whose miscalibration is not a simple slope. It stays
pooled: one monotone curve over all landmarks (a curve per landmark would need many more rows
per session than a clinic has, and is not a linear map of the contributions).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from dropout_risk.models.logodds import EPS, landmark_intercepts, logit

__all__ = ["EPS", "MIN_CLASS_ROWS", "Method", "ProbabilityCalibrator", "logit"]

Method = Literal["sigmoid", "isotonic"]

#: a landmark gets its own Platt intercept only with at least this many rows of each outcome there:
#: the intercept's standard error is about 1/sqrt(events), 0.14 on the log-odds at 50.
MIN_CLASS_ROWS = 50


class ProbabilityCalibrator:
    """Maps an uncalibrated probability (at a landmark) to a calibrated one."""

    def __init__(self, method: Method = "sigmoid", min_class_rows: int = MIN_CLASS_ROWS):
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(f"unknown calibration method {method!r}")
        self.method = method
        self.min_class_rows = min_class_rows

    def fit(self, p: np.ndarray, y: np.ndarray, landmark: np.ndarray | None = None) -> ProbabilityCalibrator:
        """Fit on probabilities ``p`` with outcomes ``y``; ``landmark``: each row's session (sigmoid only)."""
        y = np.asarray(y, dtype=int)
        self.landmark_intercepts_: dict[int, float] = {}
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
            return self
        z = logit(p)
        own = self._own_intercepts(y, landmark)
        shifts = self._shrunk_shifts(z, y, landmark, own) if own and landmark is not None else np.zeros(0)
        if np.any(shifts):
            sessions = np.asarray(landmark, dtype=float).reshape(-1)
            offset = np.zeros_like(z)
            for k, shift in zip(own, shifts, strict=True):
                offset[sessions == k] = shift
            # The pooled slope and intercept, refitted with each landmark's (shrunk) distance as an offset.
            slope, intercept = _platt_with_offset(z, offset, y)
            # A slope <= 0 would reverse every session's ranking (a model no better than chance within
            # sessions, such as intake_only): such a model keeps the pooled fit, whose slope the
            # differences between sessions set.
            if slope > 0:
                self.slope_, self.intercept_ = slope, intercept
                self.landmark_intercepts_ = {k: intercept + float(d) for k, d in zip(own, shifts, strict=True)}
                return self
        # No landmark differs beyond noise: plain Platt scaling.
        pooled = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
        self.slope_, self.intercept_ = float(pooled.coef_[0, 0]), float(pooled.intercept_[0])
        self.landmark_intercepts_ = dict.fromkeys(own, self.intercept_)
        return self

    @staticmethod
    def _shrunk_shifts(z: np.ndarray, y: np.ndarray, landmark: np.ndarray, own: list[int]) -> np.ndarray:
        """Each landmark's intercept minus the pooled one, shrunk by how much of it is noise."""
        sessions = np.asarray(landmark, dtype=float).reshape(-1)
        # One column per landmark with its own intercept, one for the rest (they inform the slope only).
        groups = [sessions == k for k in own]
        rest = ~np.any(groups, axis=0)
        design = np.column_stack([z, *groups, *([rest] if rest.any() else [])]).astype(float)
        joint = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000).fit(design, y)
        slope = float(joint.coef_[0, 0])
        if slope <= 0:  # no ranking within sessions to keep: see fit
            return np.zeros(len(own))
        pooled = _offset_intercept(slope * z, y)
        fitted = joint.coef_[0, 1 : 1 + len(own)]
        variances = np.asarray([_intercept_variance(slope * z[g] + b) for g, b in zip(groups, fitted, strict=True)])
        return shrink_towards(pooled, fitted, variances) - pooled

    def _own_intercepts(self, y: np.ndarray, landmark: np.ndarray | None) -> list[int]:
        """The landmarks with enough rows of each outcome for an intercept of their own (at least two)."""
        if landmark is None:
            return []
        sessions = np.asarray(landmark, dtype=float).reshape(-1)
        if sessions.shape != y.shape:
            raise ValueError("landmark and outcomes differ in length")
        own = []
        for k in np.unique(sessions[np.isfinite(sessions)]):
            at = sessions == k
            if k == int(k) and min(int(y[at].sum()), int((1 - y[at]).sum())) >= self.min_class_rows:
                own.append(int(k))
        return own if len(own) > 1 or (own and (~np.isin(sessions, own)).any()) else []

    def transform(self, p: np.ndarray, landmark: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities; ``landmark`` (each row's session) is required once fitted per landmark."""
        if self.method == "isotonic":
            return self.model_.predict(np.asarray(p, dtype=float))
        return expit(logit(p) * self.logit_slope + self.logit_intercepts(landmark, len(np.atleast_1d(p))))

    def logit_intercepts(self, landmark: np.ndarray | None, n: int) -> np.ndarray:
        """What calibration adds to the slope-scaled raw log-odds of each of ``n`` rows (0 for isotonic)."""
        if self.method == "isotonic":
            return np.zeros(n)
        table = getattr(self, "landmark_intercepts_", {})
        if landmark is None:
            if table:
                raise ValueError("this calibrator has an intercept per landmark: pass each row's landmark")
            return np.full(n, self.logit_intercept)
        return landmark_intercepts(landmark, table, self.logit_intercept)

    @property
    def logit_slope(self) -> float:
        """How much the calibrated log-odds move per unit of raw log-odds (1 for isotonic: not linear)."""
        return self.slope_ if self.method == "sigmoid" else 1.0

    @property
    def logit_intercept(self) -> float:
        """The pooled intercept (landmarks without their own; 0 for isotonic)."""
        return self.intercept_ if self.method == "sigmoid" else 0.0

    def __setstate__(self, state: dict) -> None:
        # A calibrator pickled before per-landmark intercepts kept scikit-learn's Platt fit in model_.
        if state.get("method") == "sigmoid" and "slope_" not in state and "model_" in state:
            fitted = state.pop("model_")
            state |= {"slope_": float(fitted.coef_[0, 0]), "intercept_": float(fitted.intercept_[0])}
        state.setdefault("landmark_intercepts_", {})
        state.setdefault("min_class_rows", MIN_CLASS_ROWS)
        self.__dict__.update(state)


def _intercept_variance(log_odds: np.ndarray) -> float:
    """The sampling variance of a landmark's intercept (inverse Fisher information, slope held fixed)."""
    p = expit(log_odds)
    return float(1.0 / np.sum(p * (1 - p)))


def shrink_towards(pooled: float, intercepts: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Each landmark's intercept pulled towards the pooled one by how much of its distance is noise.

    Empirical Bayes: the landmarks' true intercepts spread around the pooled one with variance tau^2,
    estimated by DerSimonian and Laird's moment estimator from the fitted intercepts and their
    sampling variances; each is then shrunk by tau^2 / (tau^2 + its variance). When the fitted
    intercepts differ no more than their noise explains, tau^2 is 0 and every landmark gets the
    pooled intercept; when they differ by much more, each keeps nearly its own.
    """
    weights = 1.0 / variances
    centre = np.sum(weights * intercepts) / np.sum(weights)
    q = np.sum(weights * (intercepts - centre) ** 2)
    scale = np.sum(weights) - np.sum(weights**2) / np.sum(weights)
    tau2 = max(0.0, (q - (len(intercepts) - 1)) / scale) if scale > 0 else 0.0
    return pooled + tau2 / (tau2 + variances) * (intercepts - pooled)


def _platt_with_offset(z: np.ndarray, offset: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (slope, intercept) of y ~ slope * z + intercept + offset (Newton's method)."""
    X = np.column_stack([z, np.ones_like(z)])
    beta = np.zeros(2)
    for _ in range(100):
        p = expit(X @ beta + offset)
        step = np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    return float(beta[0]), float(beta[1])


def _offset_intercept(offset: np.ndarray, y: np.ndarray) -> float:
    """The maximum-likelihood intercept of a logistic model with ``offset`` fixed (the pooled intercept)."""
    # The score sum(y - expit(offset + b)) falls strictly in b: one root when both outcomes occur.
    return float(brentq(lambda b: float(np.sum(y - expit(offset + b))), -1e3, 1e3, xtol=1e-12))
