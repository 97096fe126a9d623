"""The SVG pieces every dashboard chart is built from: colours, numbers, lines and the session axis.

Every text that goes into the SVG goes through ``esc``, so the charts can be marked safe.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dropout_risk.serving.values import is_missing, plain_number

# Colours. Lines and markers need 3:1 against white (WCAG 1.4.11), text 4.5:1 (1.4.3);
# tests/serving/test_charts.py checks every pair.
INK = "#1b1f24"
MUTED = "#4a5560"
GRID = "#d5dae0"
SERIES_COLOURS = ("#1f5fbf", "#7b2cbf", "#0f6e66", "#a3470c")
BAND_FILL = "#dbe7f8"
BAND_COLOURS = {"low": "#1a7f37", "moderate": "#8a5a00", "high": "#b42318"}
ZONE_FILLS = {"low": "#eef8f1", "moderate": "#fff6df", "high": "#fdeeed"}
BAND_NAMES = {"low": "low", "moderate": "moderate", "high": "high"}

WIDTH = 720
LEFT = 52
RIGHT = 52
FONT = 12


# --- text and numbers ----------------------------------------------------------------------


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def px(value: float) -> str:
    """A coordinate with at most one decimal (compact SVG)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def number(value: float | None) -> str:
    """A score as a clinician writes it: whole when whole, else one decimal; "-" when missing."""
    return "-" if value is None or is_missing(value) else plain_number(value)


def percent(probability: float | None) -> str:
    if probability is None:
        return "-"
    return f"{round(probability * 100):d}%"


def points(value: float) -> str:
    """Percentage points of risk, signed, one decimal: "+8.1", "-4.0"; "0.0" when it rounds to nothing."""
    text = f"{value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def nice_step(span: float, target: int = 5) -> float:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten giving about ``target`` intervals."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power:
            return multiple * power
    return 10 * power  # pragma: no cover - the loop always returns


def ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    value = first
    while value <= hi + 1e-9:
        out.append(round(value, 6))
        value += step
    return out


def svg_open(prefix: str, width: float, height: float, title: str, desc: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{esc(css_class)}" viewBox="0 0 {px(width)} {px(height)}" '
        f'width="{px(width)}" height="{px(height)}" role="img" '
        f'aria-labelledby="{esc(prefix)}-title {esc(prefix)}-desc" font-size="{FONT}">',
        f'<title id="{esc(prefix)}-title">{esc(title)}</title>',
        f'<desc id="{esc(prefix)}-desc">{esc(desc)}</desc>',
    ]


def segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive present points (a missing score breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def polyline(points: Sequence[tuple[float, float]], colour: str, width: float = 2, dash: str | None = None) -> str:
    coords = " ".join(f"{px(x)},{px(y)}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{px(width)}"'
        f' stroke-linejoin="round" stroke-linecap="round"{dashed}/>'
    )


# --- the session axis shared by the score and risk charts ----------------------------------


@dataclass(frozen=True)
class SessionAxis:
    """Session 1..``last`` across the plot, each session in the middle of its slot."""

    last: int
    width: float = WIDTH
    left: float = LEFT
    right: float = RIGHT

    def x(self, session: float) -> float:
        slots = max(self.last, 1)
        return self.left + (session - 0.5) / slots * (self.width - self.left - self.right)

    def labels(self) -> list[int]:
        step = max(1, math.ceil(self.last / 16))
        return [s for s in range(1, self.last + 1) if (s - 1) % step == 0 or s == self.last]


def x_axis(axis: SessionAxis, bottom: float) -> list[str]:
    parts = [
        f'<line x1="{px(axis.left)}" y1="{px(bottom)}" x2="{px(axis.width - axis.right)}" y2="{px(bottom)}" '
        f'stroke="{MUTED}"/>'
    ]
    for s in axis.labels():
        x = axis.x(s)
        parts.append(f'<line x1="{px(x)}" y1="{px(bottom)}" x2="{px(x)}" y2="{px(bottom + 4)}" stroke="{MUTED}"/>')
        parts.append(f'<text x="{px(x)}" y="{px(bottom + 16)}" text-anchor="middle" fill="{MUTED}">{s}</text>')
    parts.append(
        f'<text x="{px((axis.left + axis.width - axis.right) / 2)}" y="{px(bottom + 31)}" '
        f'text-anchor="middle" fill="{MUTED}">session</text>'
    )
    return parts
