"""The expected-trajectory curves of the whole data, from every bucket's ``trajectory_sums``.

Each bucket sends, per outcome instrument and session k, its clients' count,
means and sums of squares and products about those means. Merging them as a
parallel variance (Chan et al.) gives the whole data's sums, and
``features.trajectories.curve_from_sums`` then fits the curve exactly as the
pandas engine does.
"""

from __future__ import annotations

import pandas as pd

from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories, curve_from_sums

SUM_COLUMNS = ["n", "mx", "my", "sxx", "sxy", "syy"]


def merged_trajectories(sums: pd.DataFrame, spec: FeatureSpec) -> ExpectedTrajectories:
    """One curve per outcome instrument of ``spec`` from the buckets' sums (columns col, k, bucket, n, ...)."""
    return ExpectedTrajectories(
        {
            i.key: curve_from_sums(merge_sums(sums[sums["col"] == i.key]), spec.max_landmark)
            for i in spec.outcome_instruments
        }
    )


def merge_sums(sums: pd.DataFrame) -> pd.DataFrame:
    """Per k, the buckets' (n, means, centred sums) combined pairwise in bucket order (Chan et al.)."""
    out: dict[int, dict[str, float]] = {}
    for k, part in sums.sort_values(["k", "bucket"]).groupby("k"):
        n = mx = my = sxx = sxy = syy = 0.0
        for r in part.itertuples():
            nb = float(r.n)
            total = n + nb
            dx, dy = r.mx - mx, r.my - my
            weight = n * nb / total
            sxx += r.sxx + dx * dx * weight
            sxy += r.sxy + dx * dy * weight
            syy += r.syy + dy * dy * weight
            mx, my, n = (r.mx, r.my, nb) if n == 0 else (mx + dx * nb / total, my + dy * nb / total, total)
        out[int(k)] = {"n": n, "mx": mx, "my": my, "sxx": sxx, "sxy": sxy, "syy": syy}
    return pd.DataFrame.from_dict(out, orient="index", columns=SUM_COLUMNS)
