"""The dashboard's charts as inline SVG strings: pure functions, no I/O, no JavaScript.

Three charts:

- ``sparkline``: a caseload row's risk after each recorded session;
- ``scores_chart`` (``score_chart``): outcome and alliance scores by session on one
  chart, with each instrument's clinical cutoff line and the outcome's
  expected-trajectory band (OQ-Analyst and PCOMS style);
- ``risk_chart``: the risk by session over the low / moderate / high zones, on the
  same session axis as ``scores_chart`` so the two line up one above the other.

Every text that goes into the SVG is escaped (``svg.esc``), so callers can mark the
result safe. Each chart carries a ``<title>`` and ``<desc>`` (role="img"): a screen
reader hears what it shows, and the page also gives the numbers as a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dropout_risk.serving.ui.score_chart import ExpectedBand, ScoreSeries, expected_band, scores_chart
from dropout_risk.serving.ui.svg import (
    BAND_COLOURS,
    BAND_FILL,
    BAND_NAMES,
    GRID,
    INK,
    MUTED,
    SERIES_COLOURS,
    ZONE_FILLS,
    SessionAxis,
    esc,
    nice_step,
    number,
    percent,
    points,
    polyline,
    px,
    svg_open,
    ticks,
    x_axis,
)

__all__ = [
    "BAND_COLOURS",
    "BAND_FILL",
    "GRID",
    "INK",
    "MUTED",
    "SERIES_COLOURS",
    "ZONE_FILLS",
    "ExpectedBand",
    "ScoreSeries",
    "expected_band",
    "nice_step",
    "number",
    "percent",
    "points",
    "risk_chart",
    "scores_chart",
    "sparkline",
    "sparkline_domain",
    "ticks",
]


# --- sparkline -----------------------------------------------------------------------------


def sparkline(
    probabilities: Sequence[float],
    bands: Sequence[str],
    *,
    moderate: float,
    high: float,
    width: float = 120,
    height: float = 30,
    min_span: float = 0.10,
    prefix: str = "spark",
) -> str:
    """Risk after each session as a small line; the latest point a dot in its band's colour.

    The vertical scale fits the row's own risks but spans at least ``min_span`` (10
    percentage points), so a rise or fall shows without noise looking like one. A
    band threshold inside that span is a faint dashed line.
    """
    n = len(probabilities)
    if n != len(bands):
        raise ValueError("probabilities and bands must have the same length")
    pad = 4.0
    desc = (
        "no sessions recorded" if n == 0 else "risk after each session: " + ", ".join(percent(p) for p in probabilities)
    )
    parts = svg_open(prefix, width, height, "Risk trend", desc, "sparkline")
    lo, hi = sparkline_domain(probabilities, min_span)

    def y(p: float) -> float:
        return height - pad - (min(max(p, lo), hi) - lo) / (hi - lo) * (height - 2 * pad)

    for threshold in (moderate, high):
        if lo < threshold < hi:
            parts.append(
                f'<line x1="0" y1="{px(y(threshold))}" x2="{px(width)}" y2="{px(y(threshold))}" '
                f'stroke="{GRID}" stroke-dasharray="3 3"/>'
            )
    if n:
        step = (width - 2 * pad) / max(n - 1, 1)
        points = [(pad + i * step if n > 1 else width / 2, y(p)) for i, p in enumerate(probabilities)]
        if n > 1:
            parts.append(polyline(points, MUTED, 1.5))
        x, last_y = points[-1]
        colour = BAND_COLOURS.get(bands[-1], INK)
        parts.append(f'<circle cx="{px(x)}" cy="{px(last_y)}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline_domain(probabilities: Sequence[float], min_span: float = 0.10) -> tuple[float, float]:
    """(low, high) of a sparkline's scale: the risks' range, widened about its middle to ``min_span``."""
    if not probabilities:
        return 0.0, min_span
    lo, hi = min(probabilities), max(probabilities)
    if hi - lo < min_span:
        middle = (lo + hi) / 2
        lo, hi = middle - min_span / 2, middle + min_span / 2
    if lo < 0:
        lo, hi = 0.0, hi - lo
    if hi > 1:
        lo, hi = max(0.0, lo - (hi - 1)), 1.0
    return lo, hi


# --- risk chart ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _RiskLayout:
    """The risk chart's plot: the session axis, top and bottom, and the highest risk the y axis shows."""

    axis: SessionAxis
    top: float
    bottom: float
    y_max: float

    def y(self, p: float) -> float:
        return self.bottom - min(max(p, 0.0), self.y_max) / self.y_max * (self.bottom - self.top)


def _risk_desc(
    sessions: Sequence[int], probabilities: Sequence[float], bands: Sequence[str], moderate: float, high: float
) -> str:
    risks = "; ".join(
        f"session {n}: {percent(p)} ({BAND_NAMES.get(b, b)})"
        for n, p, b in zip(sessions, probabilities, bands, strict=True)
    )
    return f"{risks or 'no sessions recorded'}. Bands: low below {percent(moderate)}, high from {percent(high)}."


def _zones(layout: _RiskLayout, moderate: float, high: float) -> list[str]:
    """The low / moderate / high zones shaded, each named where it has room, and the dotted thresholds."""
    y, x0, x1 = layout.y, layout.axis.left, layout.axis.width - layout.axis.right
    parts = []
    for name, lo, hi in (("low", 0.0, moderate), ("moderate", moderate, high), ("high", high, layout.y_max)):
        if lo >= layout.y_max:
            continue
        parts.append(
            f'<rect class="zone zone-{name}" x="{px(x0)}" y="{px(y(hi))}" width="{px(x1 - x0)}" '
            f'height="{px(y(lo) - y(hi))}" fill="{ZONE_FILLS[name]}"/>'
        )
        top_of_zone = y(min(hi, layout.y_max))
        if y(lo) - top_of_zone >= 14:  # room for the zone's name
            parts.append(
                f'<text x="{px(x1 - 6)}" y="{px(top_of_zone + 13)}" text-anchor="end" '
                f'fill="{BAND_COLOURS[name]}" font-weight="600">{name} risk</text>'
            )
    for value in ticks(0.0, layout.y_max, 4):
        parts.append(
            f'<text x="{px(x0 - 6)}" y="{px(y(value) + 4)}" text-anchor="end" fill="{MUTED}">{percent(value)}</text>'
        )
    for threshold in (moderate, high):
        if threshold < layout.y_max:
            parts.append(
                f'<line x1="{px(x0)}" y1="{px(y(threshold))}" x2="{px(x1)}" y2="{px(y(threshold))}" '
                f'stroke="{MUTED}" stroke-width="1" stroke-dasharray="2 3"/>'
            )
    return parts


def _risk_points(
    layout: _RiskLayout, sessions: Sequence[int], probabilities: Sequence[float], bands: Sequence[str]
) -> list[str]:
    """The risk line, a dot per session in its band's colour, and the latest risk written above its dot."""
    points = [(layout.axis.x(n), layout.y(p)) for n, p in zip(sessions, probabilities, strict=True)]
    parts = [polyline(points, INK, 2)] if len(points) > 1 else []
    for (x, y), n, p, b in zip(points, sessions, probabilities, bands, strict=True):
        parts.append(
            f'<circle cx="{px(x)}" cy="{px(y)}" r="5" fill="{BAND_COLOURS.get(b, INK)}" stroke="#ffffff" '
            f'stroke-width="1.5"><title>session {n}: {percent(p)} ({esc(BAND_NAMES.get(b, b))})</title></circle>'
        )
    if points:
        x, y = points[-1]
        parts.append(
            f'<text x="{px(x)}" y="{px(y - 10)}" text-anchor="middle" fill="{INK}" font-weight="600" '
            f'paint-order="stroke" stroke="#ffffff" stroke-width="3">{percent(probabilities[-1])}</text>'
        )
    return parts


def risk_chart(
    sessions: Sequence[int],
    probabilities: Sequence[float],
    bands: Sequence[str],
    *,
    moderate: float,
    high: float,
    last_session: int | None = None,
    height: float = 190,
    prefix: str = "risk",
) -> str:
    """The risk after each session over shaded low / moderate / high zones, each zone named in text."""
    if not len(sessions) == len(probabilities) == len(bands):
        raise ValueError("sessions, probabilities and bands must have the same length")
    peak = max(probabilities, default=0.0)
    layout = _RiskLayout(
        SessionAxis(max([last_session or 0, *sessions], default=1)),
        top=10.0,
        bottom=height - 40,
        y_max=min(1.0, max(0.6, math.ceil((peak + 0.05) * 10) / 10)),
    )
    desc = _risk_desc(sessions, probabilities, bands, moderate, high)
    parts = svg_open(prefix, layout.axis.width, height, "Dropout risk by session", desc, "chart risk-chart")
    parts += _zones(layout, moderate, high)
    parts.append(
        f'<text transform="translate(12 {px((layout.top + layout.bottom) / 2)}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}">risk</text>'
    )
    parts += x_axis(layout.axis, layout.bottom)
    parts += _risk_points(layout, sessions, probabilities, bands)
    parts.append("</svg>")
    return "".join(parts)
