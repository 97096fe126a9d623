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

import numpy as np
import pandas as pd

from features.landmarks import ROUNDING_TOLERANCE
from features.spec import FeatureSpec

FLAGS = ("alliance_below_cutoff", "alliance_drop", "no_reliable_improvement", "off_track",
         "missed_appointments")
NO_IMPROVEMENT_FROM_SESSION = 4
MISSED_TOTAL_THRESHOLD = 2


def _column(features: pd.DataFrame, name: str) -> pd.Series:
    if name in features:
        return features[name].astype("float64")
    return pd.Series(np.nan, index=features.index)


def _any(conditions: list[pd.Series], index: pd.Index) -> pd.Series:
    if not conditions:
        return pd.Series(False, index=index)
    return pd.concat(conditions, axis=1).any(axis=1)


def clinical_flags(features: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One boolean column per flag in ``FLAGS``; a rule with no data to read does not fire."""
    index = features.index
    alliance = [i for i in spec.instruments if i.role == "alliance"]
    outcome = [i for i in spec.instruments if i.role == "outcome"]

    below, drop = [], []
    for instrument in alliance:
        current = _column(features, f"{instrument.key}_current")
        if instrument.cutoff is not None:
            raw = instrument.normalise(current)  # the reflection is its own inverse
            below.append(pd.Series(instrument.is_clinical(raw) & current.notna().to_numpy(), index=index))
        change = _column(features, f"{instrument.key}_change_last")
        threshold = instrument.reliable_change
        # Same 1e-9 allowance as the features' srs_any_drop: 31.3 - 32.3 is a drop of 1 (PCOMS flags it).
        drop.append(change <= -threshold + ROUNDING_TOLERANCE if threshold is not None else change < 0)

    improved, measured = [], []
    for instrument in outcome:
        if instrument.reliable_change is None:
            continue
        flag = _column(features, f"{instrument.key}_reliable_improvement")
        improved.append(flag == 1)
        measured.append(flag.notna())
    late = _column(features, "landmark") >= NO_IMPROVEMENT_FROM_SESSION
    no_improvement = late & _any(measured, index) & ~_any(improved, index)

    off_track = _any([_column(features, f"{i.key}_off_track") == 1 for i in outcome], index)
    missed = (_column(features, "missed_last") >= 1) | (_column(features, "missed_total") >= MISSED_TOTAL_THRESHOLD)

    return pd.DataFrame({
        "alliance_below_cutoff": _any(below, index),
        "alliance_drop": _any(drop, index),
        "no_reliable_improvement": no_improvement,
        "off_track": off_track,
        "missed_appointments": missed,
    }, index=index)
