"""The session rules (``features.session_rules``) on API input, each problem at its place in the request body."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.session_rules import BrokenRule, order_problems, score_problems
from dropout_risk.serving.scoring import HistoryRow

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """A broken rule where the request put the value (``loc``, as pydantic's errors name it)."""

    loc: Loc
    msg: str


def _at(loc: Loc, broken: list[BrokenRule]) -> list[Problem]:
    return [
        Problem((*loc, b.field, b.instrument) if b.instrument is not None else (*loc, b.field), b.rule) for b in broken
    ]


def check_scores(scores: Mapping[str, float], registry: InstrumentRegistry, loc: Loc) -> list[Problem]:
    return _at(loc, score_problems(scores, registry))


def check_next_session(number: int, date: dt.date, previous: HistoryRow | None, loc: Loc = ("body",)) -> list[Problem]:
    """A session that follows a client's stored ``previous`` session (None: the client has none)."""
    expected = 1 if previous is None else previous.session_number + 1
    previous_date = None if previous is None else previous.session_date
    return _at(loc, order_problems(number, date, expected=expected, previous_date=previous_date))


def check_history(history: Sequence[HistoryRow], registry: InstrumentRegistry) -> list[Problem]:
    """A whole history (POST /v1/score): numbered 1..n in order, dates never going back, scores in range."""
    problems = []
    for position, row in enumerate(history):
        loc = ("body", "sessions", position)
        previous_date = history[position - 1].session_date if position else None
        broken = order_problems(
            row.session_number, row.session_date, expected=position + 1, previous_date=previous_date
        )
        problems += _at(loc, broken) + check_scores(row.scores, registry, loc)
    return problems
