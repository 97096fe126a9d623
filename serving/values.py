"""Loose values as the explanations and the dashboard read them: missing or not, a number as a clinician writes it."""

from __future__ import annotations

import re
from typing import Any

_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pd.NA are missing."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are unequal to themselves
    except TypeError:  # pd.NA
        return True


def fires(value: Any) -> bool:
    """A flag's value: true fires; false and missing do not."""
    return not is_missing(value) and bool(value)


def plain_number(value: float) -> str:
    """Whole when whole (after rounding to one decimal), else one decimal: 12, 12.5."""
    rounded = round(float(value), 1)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.1f}"


def query_int(text: str | None, max_digits: int = 6) -> int | None:
    """A query parameter as a whole number of at most ``max_digits`` ASCII digits, else None.

    Strict on purpose: ``str.isdigit`` is true for superscripts and circled digits, which ``int`` refuses
    (a 500), and ``int`` itself takes other scripts' digits, signs, spaces and underscores.
    """
    if text is None or len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)
