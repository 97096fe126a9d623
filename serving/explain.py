"""Feature values and clinical flags in plain words, in the RAW units of each instrument.

``feature_text`` gives the sentence a reason quotes for one landmark-table value
(``serving.reasons`` builds the concept factors and changes from them). Feature
values arrive direction-normalised (higher = better; ``Instrument.normalise``
reflects lower-is-better scales as ``min + max - v``), so they are turned back
here: levels through ``normalise`` (its own inverse), differences by their sign
(for a lower-is-better scale a positive normalised change means the raw score
fell, which is better).

Pure functions: no I/O, no logging. The texts carry clinical data and go back
only to the clinic that owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from dropout_risk.features.flags import FLAGS, NO_IMPROVEMENT_FROM_SESSION
from dropout_risk.features.instruments import Instrument
from dropout_risk.features.spec import LANDMARK, FeatureSpec
from dropout_risk.serving.risk import FlagOut
from dropout_risk.serving.values import fires, plain_number

# Short labels clinicians use; any other instrument (a user-declared one) goes by its name.
SHORT_LABELS: dict[str, str] = {
    "ors": "ORS",
    "srs": "SRS",
    "phq9": "PHQ-9",
    "gad7": "GAD-7",
    "oq45": "OQ-45",
    "core10": "CORE-10",
    "wai_sr": "WAI-SR",
    "hamd17": "HAM-D",
    "hama": "HAM-A",
}

FLAG_LABELS: dict[str, str] = {
    "alliance_below_cutoff": "alliance below cutoff",
    "alliance_drop": "alliance dropped since the last session",
    "no_reliable_improvement": f"no reliable improvement by session {NO_IMPROVEMENT_FROM_SESSION}",
    "off_track": "off the expected trajectory (not on track)",
    "missed_appointments": "missed appointments",
}


# --- flags -------------------------------------------------------------------------------


def describe_flags(flags_row: Mapping[str, Any]) -> list[FlagOut]:
    """The flags that fire, in ``FLAGS`` order (NaN / missing do not fire)."""
    return [FlagOut(flag=name, text=FLAG_LABELS[name]) for name in FLAGS if fires(flags_row.get(name))]


# --- factors -----------------------------------------------------------------------------


def feature_text(name: str, value: Any, spec: FeatureSpec) -> str:
    """The plain-words text of one feature value (normalised units in, raw units out)."""
    return _describe(_describers(spec).get(name), name, value)


def instrument_label(instrument: Instrument) -> str:
    return SHORT_LABELS.get(instrument.key, instrument.name)


def subject(instrument: Instrument) -> str:
    """How the reasons name an instrument: "ORS", "alliance score (SRS)"."""
    return _subject(instrument)


def raw_value(instrument: Instrument, normalised: Any) -> str:
    """A normalised score back in the instrument's own units, as a clinician writes it."""
    return _raw(instrument, float(normalised))


# --- numbers -----------------------------------------------------------------------------


def _count(value: float, singular: str, plural: str | None = None) -> str:
    text = plain_number(value)
    return f"{text} {singular if text == '1' else (plural or singular + 's')}"


def _points(size: float) -> str:
    return _count(size, "point")


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _is_yes(value: float) -> bool:
    return value >= 0.5


# --- describers: feature name -> text ----------------------------------------------------

Describer = tuple[Callable[..., str], bool]  # (function, takes a number)


def _describe(describer: Describer | None, name: str, value: Any) -> str:
    if describer is not None:
        function, numeric = describer
        if not numeric:
            return function(value)
        number = _as_float(value)
        if number is not None:
            return function(number)
    return _unknown(name, value)


def _unknown(name: str, value: Any) -> str:
    number = _as_float(value) if not isinstance(value, str) else None
    return f"{name}: {plain_number(number) if number is not None else value}"


def _describers(spec: FeatureSpec) -> dict[str, Describer]:
    out: dict[str, Describer] = {LANDMARK: (partial(_landmark, spec.max_landmark), True)}
    out.update({name: (function, True) for name, function in _ATTENDANCE.items()})
    for instrument in spec.outcome_instruments:
        for suffix, function in _OUTCOME.items():
            out[f"{instrument.key}_{suffix}"] = (partial(function, instrument), True)
    for instrument in spec.alliance_instruments:
        for suffix, function in _ALLIANCE.items():
            out[f"{instrument.key}_{suffix}"] = (partial(function, instrument), True)
    for name in spec.numeric_covariates:
        out[name] = (partial(_numeric_covariate, name), True)
    for name in spec.categorical_covariates:
        out[name] = (partial(_categorical_covariate, name), False)
    return out


def _landmark(max_landmark: int, k: float) -> str:
    # Sessions after the last landmark are scored on the last landmark's row.
    later = " or later" if k >= max_landmark else ""
    return f"session {plain_number(k)}{later} of treatment"


def _numeric_covariate(name: str, value: float) -> str:
    return f"{name.replace('_', ' ')} {plain_number(value)}"


def _categorical_covariate(name: str, value: Any) -> str:
    return f"{name.replace('_', ' ')}: {value}"


# attendance


def _missed_total(n: float) -> str:
    if plain_number(n) == "0":
        return "no missed appointments so far"
    return f"{_count(n, 'missed appointment')} so far"


def _missed_last(n: float) -> str:
    if plain_number(n) == "0":
        return "no missed appointments since the last session"
    return f"{_count(n, 'missed appointment')} since the last session"


_ATTENDANCE: dict[str, Callable[[float], str]] = {
    "days_in_treatment": lambda d: f"in treatment for {_count(d, 'day')}",
    "mean_gap_days": lambda d: f"sessions on average {_count(d, 'day')} apart",
    "last_gap_days": lambda d: f"{_count(d, 'day')} since the previous session",
    "missed_total": _missed_total,
    "missed_last": _missed_last,
}


# shared by outcome and alliance


def _subject(instrument: Instrument) -> str:
    label = instrument_label(instrument)
    return f"alliance score ({label})" if instrument.role == "alliance" else label


def _raw(instrument: Instrument, normalised: float) -> str:
    return plain_number(instrument.normalise(normalised))  # the reflection is its own inverse


def _change(since: str, instrument: Instrument, change: float) -> str:
    """A change in normalised units (positive = better) in the raw direction of the scale."""
    subject = _subject(instrument)
    if plain_number(abs(change)) == "0":
        return f"{subject} unchanged since {since}"
    better = change > 0
    size = _points(abs(change))
    if instrument.higher_is_better:
        if instrument.role == "alliance":
            verb = "rose" if better else "fell"
        else:
            verb = "improved" if better else "worsened"
        return f"{subject} {verb} {size} since {since}"
    verb = "fell" if better else "rose"  # lower is better: a better score is a lower raw score
    return f"{subject} {verb} {size} since {since} ({'better' if better else 'worse'})"


def _current(instrument: Instrument, value: float) -> str:
    text = f"{_subject(instrument)} is {_raw(instrument, value)}"
    if instrument.cutoff is None:
        return text
    kind = "clinical cutoff" if instrument.role == "outcome" else "cutoff"
    return f"{text} ({kind} {plain_number(instrument.cutoff)})"


# outcome


def _intake(instrument: Instrument, value: float) -> str:
    return f"{_subject(instrument)} at intake was {_raw(instrument, value)}"


def _sessions_since_obs(instrument: Instrument, n: float) -> str:
    label = _subject(instrument)
    if plain_number(n) == "0":
        return f"{label} given at this session"
    return f"{label} last given {_count(n, 'session')} ago"


def _slope(instrument: Instrument, slope: float) -> str:
    label = _subject(instrument)
    if plain_number(abs(slope)) == "0":
        return f"{label} about level so far"
    trend = "improving" if slope > 0 else "worsening"
    return f"{label} {trend} about {_points(abs(slope))} per session"


def _reliable_improvement(instrument: Instrument, value: float) -> str:
    no = "" if _is_yes(value) else "no "
    return f"{no}reliable improvement on {_subject(instrument)} since intake"


def _reliable_deterioration(instrument: Instrument, value: float) -> str:
    no = "" if _is_yes(value) else "no "
    return f"{no}reliable deterioration on {_subject(instrument)} since intake"


def _dist_cutoff(instrument: Instrument, distance: float) -> str:
    """Normalised current minus normalised cutoff: positive is the healthy side."""
    label = _subject(instrument)
    cutoff = (
        f"the clinical cutoff of {plain_number(instrument.cutoff)}"
        if instrument.cutoff is not None
        else "the clinical cutoff"
    )
    if plain_number(abs(distance)) == "0":
        return f"{label} is at {cutoff}"
    size = _points(abs(distance))
    healthy = distance > 0
    if instrument.higher_is_better:
        return f"{label} is {size} {'above' if healthy else 'below'} {cutoff}"
    side = "non-clinical range" if healthy else "clinical range"
    return f"{label} is {size} {'below' if healthy else 'above'} {cutoff} ({side})"


def _expected_dev(instrument: Instrument, deviation: float) -> str:
    label = _subject(instrument)
    where = "the expected trajectory for this intake score"
    if plain_number(abs(deviation)) == "0":
        return f"{label} is on {where}"
    size = _points(abs(deviation))
    better = deviation > 0
    if instrument.higher_is_better:
        return f"{label} is {size} {'above' if better else 'below'} {where}"
    return f"{label} is {size} {'below' if better else 'above'} {where} ({'better' if better else 'worse'})"


def _off_track(instrument: Instrument, value: float) -> str:
    state = "not on track" if _is_yes(value) else "on track"
    return f"{_subject(instrument)} {state} for this intake score"


_OUTCOME: dict[str, Callable[[Instrument, float], str]] = {
    "intake": _intake,
    "current": _current,
    "sessions_since_obs": _sessions_since_obs,
    "change_intake": partial(_change, "intake"),
    "change_last": partial(_change, "last session"),
    "slope": _slope,
    "reliable_improvement": _reliable_improvement,
    "reliable_deterioration": _reliable_deterioration,
    "dist_cutoff": _dist_cutoff,
    "expected_dev": _expected_dev,
    "off_track": _off_track,
}


# alliance


def _min(instrument: Instrument, value: float) -> str:
    word = "lowest" if instrument.higher_is_better else "worst"
    return f"{word} {_subject(instrument)} so far was {_raw(instrument, value)}"


def _mean(instrument: Instrument, value: float) -> str:
    return f"average {_subject(instrument)} so far is {_raw(instrument, value)}"


def _n_below_cutoff(instrument: Instrument, n: float) -> str:
    cutoff = f"the cutoff of {plain_number(instrument.cutoff)}" if instrument.cutoff is not None else "the cutoff"
    worse_side = "below" if instrument.higher_is_better else "on the wrong side of"
    if plain_number(n) == "0":
        return f"{_subject(instrument)} not {worse_side} {cutoff} so far"
    return f"{_subject(instrument)} {worse_side} {cutoff} in {_count(n, 'session')} so far"


def _any_drop(instrument: Instrument, value: float) -> str:
    verb = "dropped" if instrument.higher_is_better else "worsened"
    if _is_yes(value):
        return f"{_subject(instrument)} has {verb} at least once"
    return f"{_subject(instrument)} has not {verb} so far"


_ALLIANCE: dict[str, Callable[[Instrument, float], str]] = {
    "current": _current,
    "min": _min,
    "mean": _mean,
    "change_first": partial(_change, "the first session"),
    "change_last": partial(_change, "last session"),
    "n_below_cutoff": _n_below_cutoff,
    "any_drop": _any_drop,
}
