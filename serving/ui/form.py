"""The "record a session" form: its fields to a ``SessionIn``, and every problem to a message beside its field.

A message names the field and the rule, never the value typed (health data).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.serving.checks import Loc, Problem, check_scores
from dropout_risk.serving.explain import instrument_label

SCORE_PREFIX = "score_"
FIELD_LABELS = {
    "session_date": "Session date",
    "session_number": "Session number",
    "missed_since_last": "Missed appointments since the last session",
}


@dataclass(frozen=True)
class FormError:
    field: str  # the input's id: session_date, score_ors, ... ("form" for the session as a whole)
    label: str
    msg: str


def payload(form: Mapping[str, str]) -> dict[str, Any]:
    """The form's fields as ``SessionIn`` takes them (blank scores are not given)."""
    scores = {
        name.removeprefix(SCORE_PREFIX): value.replace(",", ".")  # 17,5 reads as 17.5
        for name, value in form.items()
        if name.startswith(SCORE_PREFIX) and value
    }
    out: dict[str, Any] = {
        "session_number": form.get("session_number", ""),
        "scores": scores,
        "missed_since_last": form.get("missed_since_last") or None,
    }
    if form.get("session_date"):
        out["session_date"] = form["session_date"]
    return out


def _field_id(loc: Loc) -> str:
    loc = tuple(p for p in loc if p != "body")
    if len(loc) >= 2 and loc[0] == "scores":
        return f"{SCORE_PREFIX}{loc[1]}"
    return str(loc[0]) if loc else "form"


class Errors:
    """Builds the form's error list, each field's label taken from the instrument registry."""

    def __init__(self, registry: InstrumentRegistry):
        self.registry = registry
        self.labels = {i.key: instrument_label(i) for i in registry.values()}

    def error(self, loc: Loc, msg: str) -> FormError:
        field = _field_id(loc)
        if field.startswith(SCORE_PREFIX):
            key = field.removeprefix(SCORE_PREFIX)
            label = self.labels.get(key, key)
        else:
            label = FIELD_LABELS.get(field, "This session")
        return FormError(field, label, msg)

    def of_problems(self, problems: list[Problem]) -> list[FormError]:
        return [self.error(p.loc, p.msg) for p in problems]

    def of_validation(self, exc: ValidationError, form: Mapping[str, str]) -> list[FormError]:
        """pydantic's errors, then the range errors of the scores that did parse: every problem at once."""
        errors = [self.error(tuple(e["loc"]), e["msg"]) for e in exc.errors(include_input=False)]
        numbers = {}
        for key, value in payload(form)["scores"].items():
            with contextlib.suppress(ValueError):
                numbers[key] = float(value)
        known = {e.field for e in errors}
        more = [e for e in self.of_problems(check_scores(numbers, self.registry, ())) if e.field not in known]
        return errors + more
