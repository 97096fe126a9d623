"""The log-odds transform shared by the calibrator (training) and the compiled scorer (serving).

Numpy only, so the serving side needs no scikit-learn to calibrate a probability.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS]: a logit of 0 or 1 would be infinite


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def landmark_intercepts(landmark: np.ndarray, table: dict[int, float], pooled: float) -> np.ndarray:
    """Each row's calibration intercept: its landmark's in ``table``, else ``pooled``.

    A landmark missing from ``table`` (too few training rows there, never seen, NaN or not a whole
    number) gets the pooled intercept. Shared by ``ProbabilityCalibrator`` and the compiled scorer,
    so both pick the same intercept for every row.
    """
    landmark = np.asarray(landmark, dtype=float).reshape(-1)
    out = np.full(landmark.shape, float(pooled))
    for session, intercept in table.items():
        out[landmark == session] = intercept
    return out
