"""The dashboard's charts as inline SVG strings: pure functions, no I/O, no JavaScript.

Three charts:

- ``sparkline``: a caseload row's risk after each recorded session;
- ``scores_chart``: outcome and alliance scores by session on one chart, with each
  instrument's clinical cutoff line and the outcome's expected-trajectory band
  (OQ-Analyst and PCOMS style);
- ``risk_chart``: the risk by session over the low / moderate / high zones, on the
  same session axis as ``scores_chart`` so the two line up one above the other.

``expected_band`` turns a model's expected-trajectory curve (normalised units) into
the band the score chart draws (raw units). Every text that goes into the SVG is
escaped here, so callers can mark the result safe. Each chart carries a
``<title>`` and ``<desc>`` (role="img"): a screen reader hears what it shows, and
the page also gives the numbers as a table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dropout_risk.features.instruments import Instrument
from dropout_risk.features.trajectories import ExpectedTrajectories

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


# --- small helpers -------------------------------------------------------------------------


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _f(value: float) -> str:
    """A coordinate with at most one decimal (compact SVG)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def number(value: float | None) -> str:
    """A score as a clinician writes it: whole when whole, else one decimal; "-" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"


def percent(probability: float | None) -> str:
    if probability is None:
        return "-"
    return f"{round(probability * 100):d}%"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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


def _svg_open(prefix: str, width: float, height: float, title: str, desc: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{_esc(css_class)}" viewBox="0 0 {_f(width)} {_f(height)}" '
        f'width="{_f(width)}" height="{_f(height)}" role="img" '
        f'aria-labelledby="{_esc(prefix)}-title {_esc(prefix)}-desc" font-size="{FONT}">',
        f'<title id="{_esc(prefix)}-title">{_esc(title)}</title>',
        f'<desc id="{_esc(prefix)}-desc">{_esc(desc)}</desc>',
    ]


def _segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive present points (a missing score breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def _polyline(points: Sequence[tuple[float, float]], colour: str, width: float = 2, dash: str | None = None) -> str:
    coords = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{_f(width)}"'
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


def _x_axis(axis: SessionAxis, bottom: float) -> list[str]:
    parts = [
        f'<line x1="{_f(axis.left)}" y1="{_f(bottom)}" x2="{_f(axis.width - axis.right)}" y2="{_f(bottom)}" '
        f'stroke="{MUTED}"/>'
    ]
    for s in axis.labels():
        x = axis.x(s)
        parts.append(f'<line x1="{_f(x)}" y1="{_f(bottom)}" x2="{_f(x)}" y2="{_f(bottom + 4)}" stroke="{MUTED}"/>')
        parts.append(f'<text x="{_f(x)}" y="{_f(bottom + 16)}" text-anchor="middle" fill="{MUTED}">{s}</text>')
    parts.append(
        f'<text x="{_f((axis.left + axis.width - axis.right) / 2)}" y="{_f(bottom + 31)}" '
        f'text-anchor="middle" fill="{MUTED}">session</text>'
    )
    return parts


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
    parts = _svg_open(prefix, width, height, "Risk trend", desc, "sparkline")
    lo, hi = sparkline_domain(probabilities, min_span)

    def y(p: float) -> float:
        return height - pad - (min(max(p, lo), hi) - lo) / (hi - lo) * (height - 2 * pad)

    for threshold in (moderate, high):
        if lo < threshold < hi:
            parts.append(
                f'<line x1="0" y1="{_f(y(threshold))}" x2="{_f(width)}" y2="{_f(y(threshold))}" '
                f'stroke="{GRID}" stroke-dasharray="3 3"/>'
            )
    if n:
        step = (width - 2 * pad) / max(n - 1, 1)
        points = [(pad + i * step if n > 1 else width / 2, y(p)) for i, p in enumerate(probabilities)]
        if n > 1:
            parts.append(_polyline(points, MUTED, 1.5))
        x, last_y = points[-1]
        colour = BAND_COLOURS.get(bands[-1], INK)
        parts.append(f'<circle cx="{_f(x)}" cy="{_f(last_y)}" r="3" fill="{colour}"/>')
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


# --- expected trajectory -------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedBand:
    """The expected range of an outcome score by session, in RAW units (low <= mid <= high)."""

    key: str
    label: str
    sessions: tuple[int, ...]
    low: tuple[float, ...]
    mid: tuple[float, ...]
    high: tuple[float, ...]


def expected_band(
    instrument: Instrument,
    label: str,
    trajectories: ExpectedTrajectories,
    off_track_z: float,
    intake_session: int,
    intake_score: float,
    last_session: int,
) -> ExpectedBand | None:
    """The expected-trajectory band from the client's intake (first observed) score.

    ``mean +- off_track_z * resid_sd`` from ``ExpectedTrajectories.expected`` in
    normalised units (higher = better), turned back into raw units with
    ``instrument.normalise`` (its own inverse) and clipped to the scale's range.
    A score below the band's lower (worse) edge in normalised terms is what the
    ``off_track`` flag calls not on track. None when the model has no curve.
    """
    if instrument.key not in trajectories or last_session < intake_session:
        return None
    sessions = np.arange(intake_session, last_session + 1)
    intake = float(instrument.normalise(float(intake_score)))
    mean, sd = trajectories.expected(instrument.key, np.full(len(sessions), intake), sessions)
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(sd)):
        return None
    lo_norm, hi_norm = mean - off_track_z * sd, mean + off_track_z * sd
    raw = [
        np.clip(np.asarray(instrument.normalise(v), dtype=float), instrument.min, instrument.max)
        for v in (lo_norm, mean, hi_norm)
    ]
    low, high = np.minimum(raw[0], raw[2]), np.maximum(raw[0], raw[2])
    return ExpectedBand(
        instrument.key,
        label,
        tuple(int(s) for s in sessions),
        tuple(map(float, low)),
        tuple(map(float, raw[1])),
        tuple(map(float, high)),
    )


# --- scores chart --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSeries:
    """One instrument's scores, aligned with the chart's sessions (None = not given)."""

    key: str
    label: str
    role: str
    minimum: float
    maximum: float
    higher_is_better: bool
    cutoff: float | None
    values: tuple[float | None, ...]

    @classmethod
    def of(cls, instrument: Instrument, label: str, values: Sequence[float | None]) -> ScoreSeries:
        return cls(
            instrument.key,
            label,
            instrument.role,
            float(instrument.min),
            float(instrument.max),
            instrument.higher_is_better,
            instrument.cutoff,
            tuple(values),
        )

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def scores_chart(
    sessions: Sequence[int],
    series: Sequence[ScoreSeries],
    band: ExpectedBand | None = None,
    *,
    last_session: int | None = None,
    height: float = 300,
    prefix: str = "scores",
) -> str:
    """Scores by session, one line per series, cutoff lines, and the expected band behind them.

    Series sharing a range share the left axis; a second range gets the right axis
    (at most two ranges). Outcome lines are solid with round markers, alliance lines
    dashed with square markers, so they differ by more than colour.
    """
    if not series:
        raise ValueError("scores_chart needs at least one series")
    for s in series:
        if len(s.values) != len(sessions):
            raise ValueError(f"series {s.key}: one value per session expected")
    ranges: list[tuple[float, float]] = []
    for s in series:
        if (s.minimum, s.maximum) not in ranges:
            ranges.append((s.minimum, s.maximum))
    if len(ranges) > 2:
        raise ValueError("scores_chart draws at most two score ranges (a left and a right axis)")
    last = max([last_session or 0, *sessions, *(band.sessions if band else ())], default=1)
    axis = SessionAxis(last)  # the same margins as risk_chart: the two line up
    legend_rows = 1 + (band is not None)
    top, bottom = 14 + 18 * legend_rows, height - 40

    def y_of(lo: float, hi: float):
        return lambda v: bottom - (v - lo) / (hi - lo) * (bottom - top)

    scale = {r: y_of(*r) for r in ranges}
    labels = {r: " / ".join(s.label for s in series if (s.minimum, s.maximum) == r) for r in ranges}
    desc = _scores_desc(sessions, series, band)
    title = "Scores by session: " + ", ".join(s.label for s in series)
    parts = _svg_open(prefix, axis.width, height, title, desc, "chart scores-chart")

    # axes and grid (the left range draws the grid)
    left_range = ranges[0]
    for value in ticks(*left_range):
        y = scale[left_range](value)
        parts.append(
            f'<line x1="{_f(axis.left)}" y1="{_f(y)}" x2="{_f(axis.width - axis.right)}" y2="{_f(y)}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_f(axis.left - 6)}" y="{_f(y + 4)}" text-anchor="end" fill="{MUTED}">{number(value)}</text>'
        )
    parts.append(
        f'<text transform="translate(12 {_f((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}">{_esc(labels[left_range])}</text>'
    )
    if len(ranges) == 2:
        right_range = ranges[1]
        x_axis_right = axis.width - axis.right
        for value in ticks(*right_range):
            y = scale[right_range](value)
            parts.append(f'<text x="{_f(x_axis_right + 6)}" y="{_f(y + 4)}" fill="{MUTED}">{number(value)}</text>')
        parts.append(
            f'<text transform="translate({_f(axis.width - 10)} {_f((top + bottom) / 2)}) rotate(90)" '
            f'text-anchor="middle" fill="{MUTED}">{_esc(labels[right_range])}</text>'
        )
    parts += _x_axis(axis, bottom)

    colours = {s.key: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series)}

    # the expected band (behind everything else)
    if band is not None:
        owner = next((s for s in series if s.key == band.key), None)
        if owner is not None:
            y = scale[(owner.minimum, owner.maximum)]
            upper = [(axis.x(s), y(v)) for s, v in zip(band.sessions, band.high, strict=True)]
            lower = [(axis.x(s), y(v)) for s, v in zip(band.sessions, band.low, strict=True)]
            if len(upper) == 1:  # one session: a short bar rather than an invisible polygon
                (x, yh), (_, yl) = upper[0], lower[0]
                upper, lower = [(x - 6, yh), (x + 6, yh)], [(x - 6, yl), (x + 6, yl)]
            coords = " ".join(f"{_f(x)},{_f(v)}" for x, v in [*upper, *reversed(lower)])
            parts.append(f'<polygon class="expected-band" points="{coords}" fill="{BAND_FILL}" stroke="none"/>')
            mid = [(axis.x(s), y(v)) for s, v in zip(band.sessions, band.mid, strict=True)]
            if len(mid) > 1:
                parts.append(_polyline(mid, colours[owner.key], 1, "2 4"))

    # cutoff lines, labelled at the right end of the plot (nudged apart when close)
    used: list[float] = []
    for s in series:
        if s.cutoff is None:
            continue
        y = scale[(s.minimum, s.maximum)](s.cutoff)
        parts.append(
            f'<line class="cutoff" x1="{_f(axis.left)}" y1="{_f(y)}" x2="{_f(axis.width - axis.right)}" '
            f'y2="{_f(y)}" stroke="{colours[s.key]}" stroke-width="1.5" stroke-dasharray="8 5"/>'
        )
        label_y = y - 5
        while any(abs(label_y - other) < 13 for other in used):
            label_y += 13
        used.append(label_y)
        parts.append(
            f'<text x="{_f(axis.width - axis.right - 4)}" y="{_f(label_y)}" text-anchor="end" '
            f'fill="{colours[s.key]}" paint-order="stroke" stroke="#ffffff" stroke-width="3">'
            f"{_esc(s.label)} cutoff {number(s.cutoff)}</text>"
        )

    # the scores
    for s in series:
        y = scale[(s.minimum, s.maximum)]
        colour = colours[s.key]
        points = [None if _missing(v) else (axis.x(n), y(float(v))) for n, v in zip(sessions, s.values, strict=True)]
        dash = "6 4" if s.role == "alliance" else None
        for run in _segments(points):
            if len(run) > 1:
                parts.append(_polyline(run, colour, 2.5, dash))
        for n, v, point in zip(sessions, s.values, points, strict=True):
            if point is None:
                continue
            x, yy = point
            tip = f"<title>{_esc(s.label)} {number(v)} at session {n}</title>"
            if s.role == "alliance":
                parts.append(
                    f'<rect x="{_f(x - 4)}" y="{_f(yy - 4)}" width="8" height="8" fill="{colour}" '
                    f'stroke="#ffffff" stroke-width="1.5">{tip}</rect>'
                )
            else:
                parts.append(
                    f'<circle cx="{_f(x)}" cy="{_f(yy)}" r="4.5" fill="{colour}" stroke="#ffffff" '
                    f'stroke-width="1.5">{tip}</circle>'
                )

    parts += _scores_legend(series, colours, band, axis)
    parts.append("</svg>")
    return "".join(parts)


def _scores_legend(
    series: Sequence[ScoreSeries], colours: dict[str, str], band: ExpectedBand | None, axis: SessionAxis
) -> list[str]:
    parts, x, y = [], axis.left, 16.0
    for s in series:
        colour = colours[s.key]
        if s.role == "alliance":
            parts.append(
                f'<line x1="{_f(x)}" y1="{_f(y - 4)}" x2="{_f(x + 22)}" y2="{_f(y - 4)}" stroke="{colour}" '
                f'stroke-width="2.5" stroke-dasharray="6 4"/>'
            )
            parts.append(f'<rect x="{_f(x + 7)}" y="{_f(y - 8)}" width="8" height="8" fill="{colour}"/>')
        else:
            parts.append(
                f'<line x1="{_f(x)}" y1="{_f(y - 4)}" x2="{_f(x + 22)}" y2="{_f(y - 4)}" stroke="{colour}" '
                f'stroke-width="2.5"/>'
            )
            parts.append(f'<circle cx="{_f(x + 11)}" cy="{_f(y - 4)}" r="4.5" fill="{colour}"/>')
        text = f"{s.label} ({s.role}, {s.direction})"
        parts.append(f'<text x="{_f(x + 28)}" y="{_f(y)}" fill="{INK}">{_esc(text)}</text>')
        x += 36 + 6.6 * len(text)
    if band is not None:
        y += 18
        x = axis.left
        parts.append(f'<rect x="{_f(x)}" y="{_f(y - 10)}" width="22" height="12" fill="{BAND_FILL}"/>')
        parts.append(
            f'<text x="{_f(x + 28)}" y="{_f(y)}" fill="{INK}">expected range for this intake '
            f"{_esc(band.label)} score (below it: not on track); dashed lines: clinical cutoffs</text>"
        )
    return parts


def _scores_desc(sessions: Sequence[int], series: Sequence[ScoreSeries], band: ExpectedBand | None) -> str:
    parts = []
    for s in series:
        values = ", ".join(
            f"session {n}: {number(v)}" for n, v in zip(sessions, s.values, strict=True) if not _missing(v)
        )
        cutoff = f"; clinical cutoff {number(s.cutoff)}" if s.cutoff is not None else ""
        parts.append(f"{s.label} ({s.direction}{cutoff}): {values or 'not given'}.")
    if band is not None and band.sessions:
        parts.append(
            f"Expected {band.label} range at session {band.sessions[-1]}: "
            f"{number(band.low[-1])} to {number(band.high[-1])}."
        )
    return " ".join(parts)


# --- risk chart ----------------------------------------------------------------------------


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
    last = max([last_session or 0, *sessions], default=1)
    axis = SessionAxis(last)
    top, bottom = 10.0, height - 40
    peak = max(probabilities, default=0.0)
    y_max = min(1.0, max(0.6, math.ceil((peak + 0.05) * 10) / 10))

    def y(p: float) -> float:
        return bottom - min(max(p, 0.0), y_max) / y_max * (bottom - top)

    desc = (
        "no sessions recorded"
        if not sessions
        else "; ".join(
            f"session {n}: {percent(p)} ({BAND_NAMES.get(b, b)})"
            for n, p, b in zip(sessions, probabilities, bands, strict=True)
        )
    )
    desc += f". Bands: low below {percent(moderate)}, high from {percent(high)}."
    parts = _svg_open(prefix, axis.width, height, "Dropout risk by session", desc, "chart risk-chart")
    x0, x1 = axis.left, axis.width - axis.right
    zones = (("low", 0.0, moderate), ("moderate", moderate, high), ("high", high, y_max))
    for name, lo, hi in zones:
        if lo >= y_max:
            continue
        parts.append(
            f'<rect class="zone zone-{name}" x="{_f(x0)}" y="{_f(y(hi))}" width="{_f(x1 - x0)}" '
            f'height="{_f(y(lo) - y(hi))}" fill="{ZONE_FILLS[name]}"/>'
        )
        top_of_zone = y(min(hi, y_max))
        if y(lo) - top_of_zone >= 14:  # room for the zone's name
            parts.append(
                f'<text x="{_f(x1 - 6)}" y="{_f(top_of_zone + 13)}" text-anchor="end" '
                f'fill="{BAND_COLOURS[name]}" font-weight="600">{name} risk</text>'
            )
    for value in ticks(0.0, y_max, 4):
        parts.append(
            f'<text x="{_f(x0 - 6)}" y="{_f(y(value) + 4)}" text-anchor="end" fill="{MUTED}">{percent(value)}</text>'
        )
    for threshold in (moderate, high):
        if threshold < y_max:
            parts.append(
                f'<line x1="{_f(x0)}" y1="{_f(y(threshold))}" x2="{_f(x1)}" y2="{_f(y(threshold))}" '
                f'stroke="{MUTED}" stroke-width="1" stroke-dasharray="2 3"/>'
            )
    parts.append(
        f'<text transform="translate(12 {_f((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}">risk</text>'
    )
    parts += _x_axis(axis, bottom)
    points = [(axis.x(n), y(p)) for n, p in zip(sessions, probabilities, strict=True)]
    if len(points) > 1:
        parts.append(_polyline(points, INK, 2))
    for (x, yy), n, p, b in zip(points, sessions, probabilities, bands, strict=True):
        colour = BAND_COLOURS.get(b, INK)
        parts.append(
            f'<circle cx="{_f(x)}" cy="{_f(yy)}" r="5" fill="{colour}" stroke="#ffffff" stroke-width="1.5">'
            f"<title>session {n}: {percent(p)} ({_esc(BAND_NAMES.get(b, b))})</title></circle>"
        )
    if points:
        x, yy = points[-1]
        parts.append(
            f'<text x="{_f(x)}" y="{_f(yy - 10)}" text-anchor="middle" fill="{INK}" font-weight="600" '
            f'paint-order="stroke" stroke="#ffffff" stroke-width="3">{percent(probabilities[-1])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
