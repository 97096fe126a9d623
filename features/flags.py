"""Clinical flags: the rules measurement-based-care systems raise, on landmark rows.

They are the transparent baseline model's inputs and the API's "flags". Each
reads only feature columns, so it is exactly as time-correct as they are.

| flag | fires when | source |
|---|---|---|
| alliance_below_cutoff | an alliance score is on the clinical side of its cutoff (SRS < 36) | PCOMS |
| alliance_drop | an alliance score fell since the previous session (SRS: by >= 1) | PCOMS |
| no_reliable_improvement | from session 4 on, no outcome measure has improved reliably since intake | OQ-Analyst, NHS Talking Therapies |
| off_track | an outcome score is below its expected trajectory for this intake score | OQ-Analyst, PCOMS |
| missed_appointments | a missed appointment since the last session, or two or more in all | Greenspace, Mirah (missed-assessment alerts) |
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dropout_risk.features.landmarks import ROUNDING_TOLERANCE
from dropout_risk.features.spec import FeatureSpec

FLAGS = ("alliance_below_cutoff", "alliance_drop", "no_reliable_improvement", "off_track", "missed_appointments")
NO_IMPROVEMENT_FROM_SESSION = 4
MISSED_TOTAL_THRESHOLD = 2


def _column(features: Mapping[str, object], name: str, n: int) -> np.ndarray:
    if name in features:
        return np.asarray(features[name], dtype=float)
    return np.full(n, np.nan)


def _any(conditions: list[np.ndarray], n: int) -> np.ndarray:
    if not conditions:
        return np.zeros(n, dtype=bool)
    return np.logical_or.reduce(conditions)


def flag_arrays(features: Mapping[str, object], spec: FeatureSpec, n: int) -> dict[str, np.ndarray]:
    """One boolean array per flag in ``FLAGS`` for ``n`` feature rows (a DataFrame or a dict of arrays).

    A rule with no data to read does not fire (comparisons with NaN are False).
    """
    alliance = [i for i in spec.instruments if i.role == "alliance"]
    outcome = [i for i in spec.instruments if i.role == "outcome"]

    below, drop = [], []
    for instrument in alliance:
        current = _column(features, f"{instrument.key}_current", n)
        if instrument.cutoff is not None:
            raw = instrument.normalise(current)  # the reflection is its own inverse
            below.append(instrument.is_clinical(raw) & ~np.isnan(current))
        change = _column(features, f"{instrument.key}_change_last", n)
        threshold = instrument.reliable_change
        # Same rounding margin as the features: SRS is marked in tenths, and 31.3 - 32.3 is a hair
        # above -1 in floating point, yet it is the drop of 1 that PCOMS flags.
        drop.append(change <= -threshold + ROUNDING_TOLERANCE if threshold is not None else change < 0)

    improved, measured = [], []
    for instrument in outcome:
        if instrument.reliable_change is None:
            continue
        flag = _column(features, f"{instrument.key}_reliable_improvement", n)
        improved.append(flag == 1)
        measured.append(~np.isnan(flag))
    late = _column(features, "landmark", n) >= NO_IMPROVEMENT_FROM_SESSION
    no_improvement = late & _any(measured, n) & ~_any(improved, n)

    off_track = _any([_column(features, f"{i.key}_off_track", n) == 1 for i in outcome], n)
    missed = (_column(features, "missed_last", n) >= 1) | (
        _column(features, "missed_total", n) >= MISSED_TOTAL_THRESHOLD
    )
    return {
        "alliance_below_cutoff": _any(below, n),
        "alliance_drop": _any(drop, n),
        "no_reliable_improvement": no_improvement,
        "off_track": off_track,
        "missed_appointments": missed,
    }


def clinical_flags(features: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One boolean column per flag in ``FLAGS``, indexed like ``features``."""
    return pd.DataFrame(flag_arrays(features, spec, len(features)), index=features.index)
