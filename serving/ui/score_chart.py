"""The scores chart: outcome and alliance scores by session, cutoffs, and the expected-trajectory band.

``expected_band`` turns a model's expected-trajectory curve (normalised units) into
the band the chart draws (raw units).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dropout_risk.features.instruments import Instrument
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.serving.ui.svg import (
    BAND_FILL,
    GRID,
    INK,
    MUTED,
    SERIES_COLOURS,
    SessionAxis,
    esc,
    number,
    polyline,
    px,
    segments,
    svg_open,
    ticks,
    x_axis,
)
from dropout_risk.serving.values import is_missing

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


Scale = Callable[[float], float]
Range = tuple[float, float]


@dataclass(frozen=True)
class _Layout:
    """Where a scores chart draws: the session axis, the plot's top and bottom, a y scale per score range."""

    axis: SessionAxis
    top: float
    bottom: float
    ranges: list[Range]  # the left axis's range first, then the right's (at most two)
    colours: dict[str, str]  # series key -> colour

    def scale(self, series: ScoreSeries) -> Scale:
        return self.y((series.minimum, series.maximum))

    def y(self, score_range: Range) -> Scale:
        lo, hi = score_range
        return lambda v: self.bottom - (v - lo) / (hi - lo) * (self.bottom - self.top)


def _ranges(sessions: Sequence[int], series: Sequence[ScoreSeries]) -> list[Range]:
    """The distinct score ranges in series order; raises on input the chart cannot draw."""
    if not series:
        raise ValueError("scores_chart needs at least one series")
    for s in series:
        if len(s.values) != len(sessions):
            raise ValueError(f"series {s.key}: one value per session expected")
    ranges: list[Range] = []
    for s in series:
        if (s.minimum, s.maximum) not in ranges:
            ranges.append((s.minimum, s.maximum))
    if len(ranges) > 2:
        raise ValueError("scores_chart draws at most two score ranges (a left and a right axis)")
    return ranges


def _y_axes(layout: _Layout, series: Sequence[ScoreSeries]) -> list[str]:
    """The left range's ticks and grid lines, the right range's ticks, each axis named by its instruments."""
    axis, middle = layout.axis, (layout.top + layout.bottom) / 2
    names = [" / ".join(s.label for s in series if (s.minimum, s.maximum) == r) for r in layout.ranges]
    y = layout.y(layout.ranges[0])
    parts = []
    for value in ticks(*layout.ranges[0]):
        parts.append(
            f'<line x1="{px(axis.left)}" y1="{px(y(value))}" x2="{px(axis.width - axis.right)}" y2="{px(y(value))}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{px(axis.left - 6)}" y="{px(y(value) + 4)}" text-anchor="end" fill="{MUTED}">'
            f"{number(value)}</text>"
        )
    parts.append(
        f'<text transform="translate(12 {px(middle)}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}">{esc(names[0])}</text>'
    )
    if len(layout.ranges) == 2:
        y, x = layout.y(layout.ranges[1]), axis.width - axis.right
        for value in ticks(*layout.ranges[1]):
            parts.append(f'<text x="{px(x + 6)}" y="{px(y(value) + 4)}" fill="{MUTED}">{number(value)}</text>')
        parts.append(
            f'<text transform="translate({px(axis.width - 10)} {px(middle)}) rotate(90)" '
            f'text-anchor="middle" fill="{MUTED}">{esc(names[1])}</text>'
        )
    return parts


def _band_parts(layout: _Layout, series: Sequence[ScoreSeries], band: ExpectedBand) -> list[str]:
    """The expected band as a shaded polygon and its middle as a dotted line, on its instrument's scale."""
    owner = next((s for s in series if s.key == band.key), None)
    if owner is None:
        return []
    x, y = layout.axis.x, layout.scale(owner)
    upper = [(x(s), y(v)) for s, v in zip(band.sessions, band.high, strict=True)]
    lower = [(x(s), y(v)) for s, v in zip(band.sessions, band.low, strict=True)]
    if len(upper) == 1:  # one session: a short bar rather than an invisible polygon
        (x0, yh), (_, yl) = upper[0], lower[0]
        upper, lower = [(x0 - 6, yh), (x0 + 6, yh)], [(x0 - 6, yl), (x0 + 6, yl)]
    coords = " ".join(f"{px(a)},{px(b)}" for a, b in [*upper, *reversed(lower)])
    parts = [f'<polygon class="expected-band" points="{coords}" fill="{BAND_FILL}" stroke="none"/>']
    mid = [(x(s), y(v)) for s, v in zip(band.sessions, band.mid, strict=True)]
    if len(mid) > 1:
        parts.append(polyline(mid, layout.colours[owner.key], 1, "2 4"))
    return parts


def _cutoffs(layout: _Layout, series: Sequence[ScoreSeries]) -> list[str]:
    """Each cutoff as a dashed line, labelled at the right end of the plot (labels nudged apart when close)."""
    axis = layout.axis
    parts: list[str] = []
    used: list[float] = []  # the label heights taken
    for s in series:
        if s.cutoff is None:
            continue
        y, colour = layout.scale(s)(s.cutoff), layout.colours[s.key]
        parts.append(
            f'<line class="cutoff" x1="{px(axis.left)}" y1="{px(y)}" x2="{px(axis.width - axis.right)}" '
            f'y2="{px(y)}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="8 5"/>'
        )
        label_y = y - 5
        while any(abs(label_y - other) < 13 for other in used):
            label_y += 13
        used.append(label_y)
        parts.append(
            f'<text x="{px(axis.width - axis.right - 4)}" y="{px(label_y)}" text-anchor="end" '
            f'fill="{colour}" paint-order="stroke" stroke="#ffffff" stroke-width="3">'
            f"{esc(s.label)} cutoff {number(s.cutoff)}</text>"
        )
    return parts


def _marker(s: ScoreSeries, colour: str, x: float, y: float, tip: str) -> str:
    """Outcome scores are round markers, alliance scores square: they differ by more than colour."""
    if s.role == "alliance":
        return (
            f'<rect x="{px(x - 4)}" y="{px(y - 4)}" width="8" height="8" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1.5">{tip}</rect>'
        )
    return (
        f'<circle cx="{px(x)}" cy="{px(y)}" r="4.5" fill="{colour}" stroke="#ffffff" stroke-width="1.5">{tip}</circle>'
    )


def _score_lines(layout: _Layout, sessions: Sequence[int], s: ScoreSeries) -> list[str]:
    """One series: its line (broken where a score is missing; dashed for alliance) and a marker per score."""
    x, y, colour = layout.axis.x, layout.scale(s), layout.colours[s.key]
    points = [None if v is None or is_missing(v) else (x(n), y(v)) for n, v in zip(sessions, s.values, strict=True)]
    dash = "6 4" if s.role == "alliance" else None
    parts = [polyline(run, colour, 2.5, dash) for run in segments(points) if len(run) > 1]
    for n, v, point in zip(sessions, s.values, points, strict=True):
        if point is not None:
            tip = f"<title>{esc(s.label)} {number(v)} at session {n}</title>"
            parts.append(_marker(s, colour, *point, tip))
    return parts


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
    ranges = _ranges(sessions, series)
    last = max([last_session or 0, *sessions, *(band.sessions if band else ())], default=1)
    legend_rows = 1 + (band is not None)
    layout = _Layout(
        SessionAxis(last),  # the same margins as risk_chart: the two line up
        top=14 + 18 * legend_rows,
        bottom=height - 40,
        ranges=ranges,
        colours={s.key: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series)},
    )
    title = "Scores by session: " + ", ".join(s.label for s in series)
    parts = svg_open(
        prefix, layout.axis.width, height, title, _scores_desc(sessions, series, band), "chart scores-chart"
    )
    parts += _y_axes(layout, series)
    parts += x_axis(layout.axis, layout.bottom)
    if band is not None:
        parts += _band_parts(layout, series, band)  # behind everything else
    parts += _cutoffs(layout, series)
    for s in series:
        parts += _score_lines(layout, sessions, s)
    parts += _scores_legend(series, layout.colours, band, layout.axis)
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
                f'<line x1="{px(x)}" y1="{px(y - 4)}" x2="{px(x + 22)}" y2="{px(y - 4)}" stroke="{colour}" '
                f'stroke-width="2.5" stroke-dasharray="6 4"/>'
            )
            parts.append(f'<rect x="{px(x + 7)}" y="{px(y - 8)}" width="8" height="8" fill="{colour}"/>')
        else:
            parts.append(
                f'<line x1="{px(x)}" y1="{px(y - 4)}" x2="{px(x + 22)}" y2="{px(y - 4)}" stroke="{colour}" '
                f'stroke-width="2.5"/>'
            )
            parts.append(f'<circle cx="{px(x + 11)}" cy="{px(y - 4)}" r="4.5" fill="{colour}"/>')
        text = f"{s.label} ({s.role}, {s.direction})"
        parts.append(f'<text x="{px(x + 28)}" y="{px(y)}" fill="{INK}">{esc(text)}</text>')
        x += 36 + 6.6 * len(text)
    if band is not None:
        y += 18
        x = axis.left
        parts.append(f'<rect x="{px(x)}" y="{px(y - 10)}" width="22" height="12" fill="{BAND_FILL}"/>')
        parts.append(
            f'<text x="{px(x + 28)}" y="{px(y)}" fill="{INK}">expected range for this intake '
            f"{esc(band.label)} score (below it: not on track); dashed lines: clinical cutoffs</text>"
        )
    return parts


def _scores_desc(sessions: Sequence[int], series: Sequence[ScoreSeries], band: ExpectedBand | None) -> str:
    parts = []
    for s in series:
        values = ", ".join(
            f"session {n}: {number(v)}" for n, v in zip(sessions, s.values, strict=True) if not is_missing(v)
        )
        cutoff = f"; clinical cutoff {number(s.cutoff)}" if s.cutoff is not None else ""
        parts.append(f"{s.label} ({s.direction}{cutoff}): {values or 'not given'}.")
    if band is not None and band.sessions:
        parts.append(
            f"Expected {band.label} range at session {band.sessions[-1]}: "
            f"{number(band.low[-1])} to {number(band.high[-1])}."
        )
    return " ".join(parts)
