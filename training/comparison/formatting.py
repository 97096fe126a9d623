"""Numbers as the comparison's tables show them (the markdown report and the terminal)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def number(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` decimals; "n/a" when missing or not finite."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def with_ci(value: float | None, ci: Sequence[float | None] | None, digits: int = 3, sep: str = " ") -> str:
    """``value (lo to hi)``; ``sep="\\n"`` puts the interval on a line of its own."""
    lo, hi = ci if ci else (None, None)
    return f"{number(value, digits)}{sep}({number(lo, digits)} to {number(hi, digits)})"


def p_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
