"""Expected calibration error with the documented bins: one definition for training, the gate and the monitor.

The monitor (serving) once computed its own ECE with bins that put a risk exactly on an edge one bin
higher than training's; a clinic's figure and the model's validation figure must be the same statistic.
"""

from __future__ import annotations

import math

import numpy as np


def calibration_bin_ids(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1], assigned exactly as sklearn's ``calibration_curve`` does."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Sum over equal-width bins of (bin share of rows) * |mean(y) - mean(p)|; NaN when empty.

    ``y`` and ``p`` are checked float arrays of one length (callers validate their own inputs).
    """
    if y.size == 0:
        return math.nan
    gap = np.bincount(calibration_bin_ids(p, n_bins), weights=y - p, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)
