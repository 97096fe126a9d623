"""Why a risk is what it is, by clinical concept, and what moved it since the last session.

``concept_factors`` turns ``models.reference.ConceptEffects`` (each concept's log-odds against the
average training client at the same session) into one plain-words factor per concept. A factor says
"weaker", "behind" or "more" only when its effect raises the risk *and* at least one of the client's
own values lies on that side of the average client's at this session (and the mirror words when it
lowers the risk); otherwise it names the concept without a comparison. So a factor's words never
state a direction its contribution does not have.

``risk_changes`` splits the move from the previous session's risk to this one into steps, re-scoring
the previous session's model inputs with one concept at a time brought up to date: coming back
(the session number), alliance, outcome, attendance. Each step is a difference of two risks, so the
steps sum exactly to the change in risk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from dropout_risk.features.concepts import EXPLAINED, direction, model_groups
from dropout_risk.features.spec import LANDMARK, FeatureSpec
from dropout_risk.models.reference import ConceptReference
from dropout_risk.serving.explain import feature_text, raw_value, subject
from dropout_risk.serving.risk import Change, Factor
from dropout_risk.serving.values import is_missing, plain_number

# (raises, lowers, no value recorded) headlines; "{k}" is the session number.
HEADLINES: dict[str, tuple[str, str, str]] = {
    "alliance": (
        "alliance weaker than for the average client at session {k}",
        "alliance stronger than for the average client at session {k}",
        "no alliance score recorded so far",
    ),
    "outcome": (
        "progress behind the average client's at session {k}",
        "progress ahead of the average client's at session {k}",
        "no outcome score recorded so far",
    ),
    "attendance": (
        "more missed appointments than the average client at session {k}",
        "fewer missed appointments than the average client at session {k}",
        "missed appointments not recorded",
    ),
}
NEUTRAL = {
    "alliance": "alliance, compared with the average client at session {k}",
    "outcome": "progress, compared with the average client at session {k}",
    "attendance": "attendance, compared with the average client at session {k}",
    "covariates": "client characteristics, compared with the average client at session {k}",
}


def concept_factors(
    row: Mapping[str, Any],
    effects: Mapping[str, float],
    spec: FeatureSpec,
    reference: ConceptReference,
    landmark: int,
    columns: Sequence[str],
) -> list[Factor]:
    """One factor per explained concept with a non-zero effect, largest |effect| first.

    ``row``: the landmark row's values (normalised units, categories as their level); ``columns``:
    the model's inputs (a concept's values quoted are those the model uses).
    """
    groups = {concept: [c for c in model_groups(spec)[concept] if c in columns] for concept in EXPLAINED}
    chosen = [(c, float(effects[c])) for c in EXPLAINED if groups[c] and round(float(effects[c]), 4) != 0]
    chosen.sort(key=lambda item: -abs(item[1]))
    return [
        Factor(
            feature=concept,
            contribution=round(effect, 4),
            effect="raises" if effect > 0 else "lowers",
            text=_factor_text(concept, effect, groups[concept], row, spec, reference, landmark),
        )
        for concept, effect in chosen
    ]


def _factor_text(
    concept: str,
    effect: float,
    columns: list[str],
    row: Mapping[str, Any],
    spec: FeatureSpec,
    reference: ConceptReference,
    landmark: int,
) -> str:
    present = [c for c in columns if not is_missing(row.get(c))]
    details = "; ".join(feature_text(c, row[c], spec) for c in present)
    if not present:
        return HEADLINES[concept][2] if concept in HEADLINES else "client characteristics not recorded"
    headline = NEUTRAL[concept]
    if concept in HEADLINES:
        raises, lowers, _ = HEADLINES[concept]
        sides = [_side(spec, c, row[c], reference.value_at(c, landmark)) for c in present]
        if effect > 0 and 1 in sides:
            headline = raises
        elif effect < 0 and -1 in sides:
            headline = lowers
    return f"{headline.format(k=landmark)}: {details}"


def _side(spec: FeatureSpec, column: str, value: Any, average: float | None) -> int:
    """+1 when the value lies on the risk-raising side of the average client's, -1 the other, 0 neither."""
    if average is None:
        return 0
    return int(np.sign(direction(spec, column) * (float(value) - average)))


# --- what changed since the last session ------------------------------------------------------

Step = Literal["returned", "alliance", "outcome", "attendance"]
STEPS: tuple[Step, ...] = ("returned", "alliance", "outcome", "attendance")


def risk_changes(
    previous: np.ndarray,
    current: np.ndarray,
    columns: Sequence[str],
    predict: Any,
    spec: FeatureSpec,
    rows: tuple[Mapping[str, Any], Mapping[str, Any]],
    session_number: int,
) -> list[Change]:
    """The move from ``previous``'s risk to ``current``'s (model input rows), one concept at a time.

    ``predict``: input matrix -> calibrated risks. ``rows``: the two sessions' landmark values (for
    the words). Every input left after the concepts (covariates do not change) is brought up to date
    in the last step, so the last risk is exactly ``current``'s and the steps sum to the change.
    """
    groups = model_groups(spec)
    position = {c: j for j, c in enumerate(columns)}
    step_columns = {
        "returned": [LANDMARK],
        "alliance": groups["alliance"],
        "outcome": groups["outcome"],
        "attendance": list(columns),
    }
    hybrid, stack = previous.astype(float).copy(), [previous.astype(float)]
    for step in STEPS:
        hybrid = hybrid.copy()
        wanted = [position[c] for c in step_columns[step] if c in position]
        hybrid[wanted] = current[wanted]
        stack.append(hybrid)
    risks = np.asarray(predict(np.vstack(stack)), dtype=float)
    return [
        Change(
            concept=step,
            points=float(100 * (risks[i + 1] - risks[i])),
            text=_change_text(step, spec, rows, session_number),
        )
        for i, step in enumerate(STEPS)
    ]


def _change_text(step: str, spec: FeatureSpec, rows: tuple[Mapping[str, Any], Mapping[str, Any]], k: int) -> str:
    before, now = rows
    if step == "returned":
        return f"came back for session {k}"
    if step == "attendance":
        missed = now.get("missed_last")
        return HEADLINES["attendance"][2] if is_missing(missed) else feature_text("missed_last", missed, spec)
    instruments = spec.alliance_instruments if step == "alliance" else spec.outcome_instruments
    parts = [_moved(i, before, now, spec) for i in instruments]
    return "; ".join(p for p in parts if p) or f"no {step} score recorded so far"


def _moved(instrument: Any, before: Mapping[str, Any], now: Mapping[str, Any], spec: FeatureSpec) -> str:
    text = _from_to(
        subject(instrument), instrument, before.get(f"{instrument.key}_current"), now.get(f"{instrument.key}_current")
    )
    if not text:
        return ""
    if instrument.role == "alliance":  # the model also reads the mean so far: say where it went
        mean = _from_to(
            "average so far", instrument, before.get(f"{instrument.key}_mean"), now.get(f"{instrument.key}_mean")
        )
        return f"{text} ({mean})" if mean else text
    if not is_missing(now.get(f"{instrument.key}_expected_dev")):
        text += f"; now {feature_text(f'{instrument.key}_expected_dev', now[f'{instrument.key}_expected_dev'], spec)}"
    return text


def _from_to(label: str, instrument: Any, then: Any, latest: Any) -> str:
    """ "label from 37 to 31", "label unchanged at 38", "label 36 (first score)" in raw units; "" if unknown."""
    if is_missing(latest):
        return ""
    if is_missing(then):
        return f"{label} {raw_value(instrument, latest)} (first score)"
    if plain_number(abs(float(latest) - float(then))) == "0":
        return f"{label} unchanged at {raw_value(instrument, latest)}"
    return f"{label} from {raw_value(instrument, then)} to {raw_value(instrument, latest)}"
