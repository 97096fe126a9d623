"""The rules one client's sessions obey (data contract v1), worded once.

Three checks apply them: the contract's file validation (``features.contract``,
vectorised over every client at once), the API's check of a whole history sent
to POST /v1/score, and its check of the next session of a stored client (POST
/v1/clients/{id}/sessions and the dashboard's form). The checks differ in what
they see, a file, a history, a history plus one session; the rules and their
words do not. A rule's text never includes the value that broke it (health data).

- Scores: every key is a known instrument and every score lies in its range
  (``Instrument.range_rule``).
- Numbering: a client's sessions are numbered 1, 2, 3, ... without gaps or repeats.
- Dates: a session is dated from ``FIRST_DATE`` to ``LAST_DATE`` (well inside the
  nanosecond timestamps pandas computes with, 1677-2262) and never before the
  client's previous session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from dropout_risk.features.instruments import InstrumentRegistry

UNKNOWN_INSTRUMENT = "unknown instrument: not in the instrument registry"
NUMBERING_STARTS_AT_ONE = "numbering must start at 1 for each client"
NUMBERING_GAP = "numbering gap: the previous session number for this client is missing"
DUPLICATE_NUMBER = "duplicate session_number for this client"
DATE_GOES_BACK = "date is earlier than this client's previous session"
FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
DATE_OUT_OF_RANGE = f"must be a date from {FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}"


def next_number_rule(expected: int) -> str:
    """The numbering rule where the expected number is known (a session that follows stored ones)."""
    return f"next session for this client must be number {expected}: no gaps"


@dataclass(frozen=True)
class BrokenRule:
    """A rule one session breaks: the field (a score's instrument key for a score) and the rule's text."""

    field: Literal["session_number", "session_date", "scores"]
    rule: str
    instrument: str | None = None


def score_problems(scores: Mapping[str, float], registry: InstrumentRegistry) -> list[BrokenRule]:
    """Unknown instruments and scores out of their instrument's range, in the order given."""
    problems = []
    for key, value in scores.items():
        instrument = registry.get(key)
        if instrument is None:
            problems.append(BrokenRule("scores", UNKNOWN_INSTRUMENT, key))
        elif not instrument.accepts(value):
            problems.append(BrokenRule("scores", instrument.range_rule, key))
    return problems


def order_problems(
    number: int, date: dt.date, *, expected: int, previous_date: dt.date | None = None
) -> list[BrokenRule]:
    """A session numbered ``number`` where ``expected`` was due, after a session dated ``previous_date``."""
    problems = []
    if number != expected:
        problems.append(BrokenRule("session_number", next_number_rule(expected)))
    if previous_date is not None and date < previous_date:
        problems.append(BrokenRule("session_date", DATE_GOES_BACK))
    return problems
