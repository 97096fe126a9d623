"""Drift of new values from a reference histogram (``models.profile``): PSI and a chi-square test.

The population stability index, sum over bins of (new share - reference share) x ln(new share /
reference share), measures how far the distribution moved (0.1 and 0.25 are the customary
"some" and "major" shift marks); scipy's chi-square goodness-of-fit test on the new counts
against the reference shares says whether the move is more than sampling noise. Missing rates
are compared with scipy's exact binomial test. A comparison needs ``min_values`` new values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dropout_risk.models.profile import Histogram

SHARE_FLOOR = 1e-4  # an empty bin's share, so that PSI stays finite


@dataclass(frozen=True)
class Drift:
    psi: float
    p_value: float
    n: int
    reference_n: int


@dataclass(frozen=True)
class MissingDrift:
    reference: float
    current: float
    p_value: float
    n: int


def distribution_drift(reference: Histogram, values: np.ndarray, min_values: int) -> Drift | None:
    """PSI and chi-square p-value of ``values`` against ``reference``; None without bins or enough values."""
    counts = reference.counts(np.asarray(values, dtype=float))
    n = int(counts.sum())
    if not reference.has_bins or n < min_values:
        return None
    shares = np.maximum(counts / n, SHARE_FLOOR)
    expected = np.maximum(np.asarray(reference.proportions), SHARE_FLOOR)
    psi = float(np.sum((shares - expected) * np.log(shares / expected)))
    from scipy.stats import chisquare  # scipy.stats is about a second of the server's start: only a check needs it

    p_value = float(chisquare(counts, expected / expected.sum() * n).pvalue)
    return Drift(psi, p_value if math.isfinite(p_value) else 0.0, n, reference.n)


def missing_drift(reference: Histogram, missing: int, rows: int, min_values: int) -> MissingDrift | None:
    """The share of rows without a value against the reference's, with an exact binomial p-value."""
    if rows < min_values:
        return None
    rate = min(max(reference.missing_rate, 0.0), 1.0)
    from scipy.stats import binomtest  # as in distribution_drift: not at the server's start

    p_value = float(binomtest(missing, rows, rate).pvalue) if 0 < rate < 1 else (1.0 if missing == rows * rate else 0.0)
    return MissingDrift(reference.missing_rate, missing / rows, p_value, rows)
