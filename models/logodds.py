"""The log-odds transform shared by the calibrator (training) and the compiled scorer (serving).

Numpy only, so the serving side needs no scikit-learn to calibrate a probability.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS]: a logit of 0 or 1 would be infinite


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))
