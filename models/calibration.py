"""Calibrators fitted on out-of-fold predictions (scikit-learn's own estimators).

``sigmoid`` (Platt scaling on the logit) is the default: two parameters, safe on
a few hundred clients, strictly monotone so it never costs discrimination, and
its slope rescales per-feature contributions exactly. ``isotonic`` is there for
large cohorts whose miscalibration is not a simple slope.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from dropout_risk.models.logodds import EPS, logit

__all__ = ["EPS", "Method", "ProbabilityCalibrator", "logit"]

Method = Literal["sigmoid", "isotonic"]


class ProbabilityCalibrator:
    """Maps an uncalibrated probability to a calibrated one."""

    def __init__(self, method: Method = "sigmoid"):
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(f"unknown calibration method {method!r}")
        self.method = method

    def fit(self, p: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        y = np.asarray(y, dtype=int)
        if self.method == "sigmoid":
            self.model_ = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
        else:
            self.model_ = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            return self.model_.predict_proba(logit(p).reshape(-1, 1))[:, 1]
        return self.model_.predict(np.asarray(p, dtype=float))

    @property
    def logit_slope(self) -> float:
        """How much the calibrated log-odds move per unit of raw log-odds (1 for isotonic: not linear)."""
        return float(self.model_.coef_[0, 0]) if self.method == "sigmoid" else 1.0

    @property
    def logit_intercept(self) -> float:
        """What calibration adds to the slope-scaled raw log-odds (Platt's intercept; 0 for isotonic)."""
        return float(self.model_.intercept_[0]) if self.method == "sigmoid" else 0.0
