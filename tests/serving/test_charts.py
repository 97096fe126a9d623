"""The dashboard's SVG charts (serving/ui/charts.py): pure functions, checked as parsed XML."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories
from dropout_risk.serving.ui import charts

SVG = "{http://www.w3.org/2000/svg}"
REGISTRY = default_registry()
ORS, SRS, PHQ9, WAI = REGISTRY["ors"], REGISTRY["srs"], REGISTRY["phq9"], REGISTRY["wai_sr"]
CSS = Path(__file__).resolve().parents[2] / "serving" / "ui" / "static" / "app.css"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text and desc is not None and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


def all_of(root: ET.Element, tag: str, css_class: str | None = None) -> list[ET.Element]:
    found = list(root.iter(f"{SVG}{tag}"))
    return [e for e in found if css_class is None or css_class in (e.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


# --- numbers and ticks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"), [(17.0, "17"), (19.5, "19.5"), (19.04, "19"), (None, "-"), (float("nan"), "-")]
)
def test_numbers_read_as_clinicians_write_them(value, text):
    assert charts.number(value) == text


def test_percent_and_ticks():
    assert charts.percent(0.234) == "23%" and charts.percent(None) == "-"
    assert charts.ticks(0, 40) == [0, 10, 20, 30, 40]
    assert charts.ticks(12, 60) == [20, 30, 40, 50, 60]
    assert charts.ticks(0, 180) == [0, 50, 100, 150]
    assert charts.ticks(0, 0.6, 4) == [0, 0.2, 0.4, 0.6]
    assert charts.nice_step(0) == 1.0


# --- sparkline -----------------------------------------------------------------------------


def test_sparkline_dot_takes_the_latest_band_colour_and_the_desc_reads_the_risks():
    root = parse(charts.sparkline([0.12, 0.25, 0.47], ["low", "moderate", "high"], moderate=0.2, high=0.4))
    (dot,) = all_of(root, "circle")
    assert dot.get("fill") == charts.BAND_COLOURS["high"]
    assert root.find(f"{SVG}desc").text == "risk after each session: 12%, 25%, 47%"
    (line,) = all_of(root, "polyline")
    ys = [float(p.split(",")[1]) for p in line.get("points").split()]
    assert ys[0] > ys[1] > ys[2]  # rising risk draws upwards
    assert len(all_of(root, "line")) == 2  # both thresholds lie within 12-47%


def test_sparkline_edge_cases():
    empty = parse(charts.sparkline([], [], moderate=0.2, high=0.4))
    assert empty.find(f"{SVG}desc").text == "no sessions recorded" and not all_of(empty, "circle")
    one = parse(charts.sparkline([0.3], ["moderate"], moderate=0.2, high=0.4))
    assert len(all_of(one, "circle")) == 1 and not all_of(one, "polyline")
    with pytest.raises(ValueError, match="same length"):
        charts.sparkline([0.1], [], moderate=0.2, high=0.4)


def test_sparkline_scale_spans_at_least_ten_points_and_stays_within_0_1():
    assert charts.sparkline_domain([0.10, 0.12]) == pytest.approx((0.06, 0.16))
    assert charts.sparkline_domain([0.1, 0.6]) == (0.1, 0.6)
    assert charts.sparkline_domain([0.01, 0.02]) == pytest.approx((0.0, 0.1))
    assert charts.sparkline_domain([0.99]) == pytest.approx((0.9, 1.0))
    assert charts.sparkline_domain([]) == (0.0, 0.1)
    # A flat risk draws a flat line in the middle, not noise blown up to full height.
    root = parse(charts.sparkline([0.1, 0.1001], ["low", "low"], moderate=0.2, high=0.4, height=30))
    ys = [float(p.split(",")[1]) for p in all_of(root, "polyline")[0].get("points").split()]
    assert abs(ys[0] - ys[1]) < 0.5 and 10 < ys[0] < 20


# --- expected trajectory band --------------------------------------------------------------


def _trajectories(key: str) -> ExpectedTrajectories:
    # Normalised units: expected = 2 + 0.9 * intake at session 2, sd 2; identity at session 1.
    return ExpectedTrajectories(
        {key: Curve(intercept=(0.0, 2.0, 4.0), slope=(1.0, 0.9, 0.85), resid_sd=(0.0, 2.0, 3.0))}
    )


def test_expected_band_for_a_higher_is_better_scale_is_mean_plus_minus_z_sd():
    band = charts.expected_band(ORS, "ORS", _trajectories("ors"), 1.5, 1, 18.0, 4)
    assert band.sessions == (1, 2, 3, 4)
    assert band.low[0] == band.mid[0] == band.high[0] == 18.0  # the intake itself
    mid2 = 2.0 + 0.9 * 18.0
    assert (band.low[1], band.mid[1], band.high[1]) == pytest.approx((mid2 - 3.0, mid2, mid2 + 3.0))
    mid4 = 4.0 + 0.85 * 18.0  # past the last fitted session the curve is held flat
    assert band.mid[3] == pytest.approx(mid4) and band.high[3] == pytest.approx(mid4 + 4.5)


def test_expected_band_for_a_lower_is_better_scale_comes_back_in_raw_units():
    raw_intake = 20.0  # PHQ-9, 0-27: normalised 27 - 20 = 7
    band = charts.expected_band(PHQ9, "PHQ-9", _trajectories("phq9"), 1.5, 1, raw_intake, 2)
    norm_mid = 2.0 + 0.9 * 7.0
    assert band.mid[1] == pytest.approx(27 - norm_mid)
    assert band.low[1] == pytest.approx(27 - norm_mid - 3.0)  # raw low is the better edge here
    assert band.high[1] == pytest.approx(27 - norm_mid + 3.0)  # above it: not on track
    assert all(lo <= mid <= hi for lo, mid, hi in zip(band.low, band.mid, band.high, strict=True))


def test_expected_band_is_clipped_to_the_scale_and_absent_without_a_curve():
    band = charts.expected_band(ORS, "ORS", _trajectories("ors"), 5.0, 1, 39.0, 3)
    assert max(band.high) <= 40 and min(band.low) >= 0
    assert charts.expected_band(ORS, "ORS", _trajectories("core10"), 1.5, 1, 18.0, 3) is None
    unfitted = ExpectedTrajectories({"ors": Curve((math.nan,), (math.nan,), (math.nan,))})
    assert charts.expected_band(ORS, "ORS", unfitted, 1.5, 1, 18.0, 3) is None
    later = charts.expected_band(ORS, "ORS", _trajectories("ors"), 1.5, 2, 18.0, 3)
    assert later.sessions == (2, 3)  # the band starts at the first observed score


def test_expected_band_edge_matches_the_off_track_rule():
    trajectories = _trajectories("ors")
    band = charts.expected_band(ORS, "ORS", trajectories, 1.5, 1, 18.0, 2)
    mean, sd = trajectories.expected("ors", np.array([18.0]), np.array([2]))
    # features: off track when current - expected < -z * sd, i.e. below the band's lower edge
    assert band.low[1] == pytest.approx(float(mean[0] - 1.5 * sd[0]))


# --- scores chart --------------------------------------------------------------------------


def _series(instrument, label, values):
    return charts.ScoreSeries.of(instrument, label, values)


def test_scores_chart_draws_scores_cutoffs_and_the_band():
    ors = _series(ORS, "ORS", [17.0, 19.5, None, 24.0])
    srs = _series(SRS, "SRS", [34.0, 35.0, 31.0, 37.0])
    band = charts.expected_band(ORS, "ORS", _trajectories("ors"), 1.5, 1, 17.0, 5)
    root = parse(charts.scores_chart([1, 2, 3, 4], [ors, srs], band, last_session=5))
    assert len(all_of(root, "line", "cutoff")) == 2
    assert len(all_of(root, "polygon", "expected-band")) == 1
    assert len(all_of(root, "circle")) == 3 + 1  # ORS markers (session 3 missing) + the legend's
    assert len(all_of(root, "rect")) == 4 + 2  # SRS markers + the legend's square and band swatch
    labels = texts(root)
    assert "ORS cutoff 25" in labels and "SRS cutoff 36" in labels
    assert "ORS (outcome, higher is better)" in labels
    desc = root.find(f"{SVG}desc").text
    assert "ORS (higher is better; clinical cutoff 25): session 1: 17, session 2: 19.5, session 4: 24." in desc
    assert "Expected ORS range at session 5" in desc
    # A missing score breaks the ORS line: 1-2 is one run; 4 stands alone, so no line reaches it.
    ors_lines = [
        p
        for p in all_of(root, "polyline")
        if p.get("stroke") == charts.SERIES_COLOURS[0] and p.get("stroke-dasharray") is None
    ]
    assert len(ors_lines) == 1 and len(ors_lines[0].get("points").split()) == 2


def test_scores_chart_axes_ranges_and_escaping():
    odd = _series(PHQ9, "<b>PHQ</b>", [12.0, 9.0])
    wai = _series(WAI, "WAI-SR", [40.0, 44.0])
    svg = charts.scores_chart([1, 2], [odd, wai])
    assert "<b>" not in svg and "&lt;b&gt;PHQ&lt;/b&gt;" in svg
    root = parse(svg)
    labels = texts(root)
    assert {"0", "10", "20"} <= set(labels)  # PHQ-9's 0-27 on the left
    assert {"30", "40", "50", "60"} <= set(labels)  # WAI-SR's 12-60 on the right
    assert "WAI-SR" in labels  # the right axis's title
    assert "<b>PHQ</b> (outcome, lower is better)" in labels
    assert len(all_of(root, "line", "cutoff")) == 1  # WAI-SR has no cutoff
    with pytest.raises(ValueError, match="at most two"):
        charts.scores_chart([1], [_series(ORS, "ORS", [1.0]), _series(PHQ9, "P", [1.0]), _series(WAI, "W", [13.0])])
    with pytest.raises(ValueError, match="one value per session"):
        charts.scores_chart([1, 2], [_series(ORS, "ORS", [1.0])])
    with pytest.raises(ValueError, match="at least one"):
        charts.scores_chart([1], [])


def test_cutoff_labels_that_would_collide_are_nudged_apart():
    a = _series(ORS, "ORS", [20.0])
    b = charts.ScoreSeries("x", "X", "outcome", 0, 40, True, 25.5, (20.0,))
    root = parse(charts.scores_chart([1], [a, b]))
    ys = sorted(float(t.get("y")) for t in root.iter(f"{SVG}text") if "cutoff" in (t.text or ""))
    assert len(ys) == 2 and ys[1] - ys[0] >= 13


# --- risk chart ----------------------------------------------------------------------------


def test_risk_chart_points_zones_and_words():
    root = parse(
        charts.risk_chart(
            [1, 2, 3], [0.1, 0.25, 0.45], ["low", "moderate", "high"], moderate=0.2, high=0.4, last_session=4
        )
    )
    points = [c for c in all_of(root, "circle")]
    assert [c.get("fill") for c in points] == [charts.BAND_COLOURS[b] for b in ("low", "moderate", "high")]
    assert [c.find(f"{SVG}title").text for c in points][-1] == "session 3: 45% (high)"
    assert {r.get("class") for r in all_of(root, "rect")} == {"zone zone-low", "zone zone-moderate", "zone zone-high"}
    labels = texts(root)
    assert {"low risk", "moderate risk", "high risk"} <= set(labels)
    assert "45%" in labels  # the latest risk is written beside its point
    assert "60%" in labels  # the axis runs to at least 60%
    desc = root.find(f"{SVG}desc").text
    assert desc.startswith("session 1: 10% (low); session 2: 25% (moderate); session 3: 45% (high)")
    assert desc.endswith("Bands: low below 20%, high from 40%.")


def test_risk_chart_axis_grows_with_the_risk_and_rejects_ragged_input():
    root = parse(charts.risk_chart([1], [0.83], ["high"], moderate=0.2, high=0.4))
    assert "75%" in texts(root)  # the axis runs to 90%, past the 83% point
    with pytest.raises(ValueError, match="same length"):
        charts.risk_chart([1, 2], [0.1], ["low"], moderate=0.2, high=0.4)
    empty = parse(charts.risk_chart([], [], [], moderate=0.2, high=0.4))
    assert empty.find(f"{SVG}desc").text.startswith("no sessions recorded")


def test_score_and_risk_charts_share_the_session_axis():
    scores = parse(charts.scores_chart([1, 2, 3], [_series(ORS, "ORS", [10.0, 12.0, 15.0])], last_session=4))
    risk = parse(
        charts.risk_chart(
            [1, 2, 3], [0.3, 0.2, 0.1], ["moderate", "moderate", "low"], moderate=0.2, high=0.4, last_session=4
        )
    )
    score_x = [float(c.get("cx")) for c in all_of(scores, "circle")][:3]
    risk_x = [float(c.get("cx")) for c in all_of(risk, "circle")]
    assert score_x == risk_x
    assert scores.get("viewBox") == risk.get("viewBox").replace(
        risk.get("viewBox").split()[3], scores.get("viewBox").split()[3]
    )


# --- colour contrast (WCAG 2.1 AA) ---------------------------------------------------------


def luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


def test_chart_colours_meet_wcag_contrast():
    white = "#ffffff"
    for colour in (charts.INK, charts.MUTED):
        assert contrast(colour, white) >= 4.5  # text
    for colour in (*charts.SERIES_COLOURS, *charts.BAND_COLOURS.values()):
        assert contrast(colour, white) >= 4.5  # cutoff labels are text in the series colour
        assert contrast(colour, charts.BAND_FILL) >= 3  # lines over the expected band
    for band, fill in charts.ZONE_FILLS.items():
        assert contrast(charts.BAND_COLOURS[band], fill) >= 4.5  # zone names
        assert contrast(charts.INK, fill) >= 4.5
        assert contrast(charts.MUTED, fill) >= 4.5


def test_stylesheet_colours_meet_wcag_contrast():
    variables = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))
    pairs = [
        ("ink", "page"),
        ("ink", "card"),
        ("muted", "page"),
        ("muted", "card"),
        ("accent", "card"),
        ("accent-ink", "accent"),
        ("error-fg", "error-bg"),
        ("success-fg", "success-bg"),
        ("chip-fg", "chip-bg"),
        ("muted", "band-none-bg"),
    ]
    pairs += [(f"band-{b}-fg", f"band-{b}-bg") for b in ("low", "moderate", "high", "none")]
    pairs += [(f"band-{b}-fg", "card") for b in ("low", "high")]  # factor arrows
    for fg, bg in pairs:
        assert contrast(variables[fg], variables[bg]) >= 4.5, (fg, bg)
    assert contrast(variables["focus"], variables["page"]) >= 3  # the focus ring
