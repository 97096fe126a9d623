"""Plain-words feature values, flag labels and suggested next steps, on hand-built rows.

Feature values are written in the features' own units (direction-normalised:
higher = better), so each expected text states what the raw score did. One test
runs the real feature builder on raw scores to check the texts read its output
the way the features mean it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.flags import FLAGS
from dropout_risk.features.instruments import Instrument, default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories
from dropout_risk.serving.explain import FLAG_LABELS, SHORT_LABELS, describe_flags, feature_text
from dropout_risk.serving.suggestions import HIGH_RISK, SUGGESTIONS, Suggestion, suggestions_for

nan = math.nan
REG = default_registry()
SPEC = FeatureSpec(
    max_landmark=8,
    off_track_z=1.0,
    instruments=(REG["ors"], REG["phq9"], REG["srs"]),
    numeric_covariates=("age",),
    categorical_covariates={"gender": ("F", "M")},
)


def text(name: str, value, spec: FeatureSpec = SPEC) -> str:
    """The text a reason quotes for a feature value (through the public function, not a helper)."""
    return feature_text(name, value, spec)


# --- texts per feature kind --------------------------------------------------------------------

# PHQ-9 (0-27, lower is better) values are normalised: raw = 27 - value; a positive change means it FELL.
CASES = [
    # alliance (SRS, higher is better)
    ("srs_change_last", -4.0, "alliance score (SRS) fell 4 points since last session"),
    ("srs_change_last", 2.0, "alliance score (SRS) rose 2 points since last session"),
    ("srs_change_last", 1.0, "alliance score (SRS) rose 1 point since last session"),
    ("srs_change_last", 0.0, "alliance score (SRS) unchanged since last session"),
    ("srs_change_first", -2.5, "alliance score (SRS) fell 2.5 points since the first session"),
    ("srs_current", 34.0, "alliance score (SRS) is 34 (cutoff 36)"),
    ("srs_min", 31.0, "lowest alliance score (SRS) so far was 31"),
    ("srs_mean", 35.25, "average alliance score (SRS) so far is 35.2"),
    ("srs_n_below_cutoff", 3.0, "alliance score (SRS) below the cutoff of 36 in 3 sessions so far"),
    ("srs_n_below_cutoff", 1.0, "alliance score (SRS) below the cutoff of 36 in 1 session so far"),
    ("srs_n_below_cutoff", 0.0, "alliance score (SRS) not below the cutoff of 36 so far"),
    ("srs_any_drop", 1.0, "alliance score (SRS) has dropped at least once"),
    ("srs_any_drop", 0.0, "alliance score (SRS) has not dropped so far"),
    # outcome, higher is better (ORS)
    ("ors_change_last", 3.0, "ORS improved 3 points since last session"),
    ("ors_change_last", -1.0, "ORS worsened 1 point since last session"),
    ("ors_change_intake", 6.4, "ORS improved 6.4 points since intake"),
    ("ors_current", 18.0, "ORS is 18 (clinical cutoff 25)"),
    ("ors_intake", 12.0, "ORS at intake was 12"),
    ("ors_slope", 0.8, "ORS improving about 0.8 points per session"),
    ("ors_slope", -1.04, "ORS worsening about 1 point per session"),
    ("ors_slope", 0.02, "ORS about level so far"),
    ("ors_expected_dev", -6.0, "ORS is 6 points below the expected trajectory for this intake score"),
    ("ors_expected_dev", 2.5, "ORS is 2.5 points above the expected trajectory for this intake score"),
    ("ors_dist_cutoff", -7.0, "ORS is 7 points below the clinical cutoff of 25"),
    ("ors_dist_cutoff", 3.0, "ORS is 3 points above the clinical cutoff of 25"),
    ("ors_dist_cutoff", 0.0, "ORS is at the clinical cutoff of 25"),
    ("ors_off_track", 1.0, "ORS not on track for this intake score"),
    ("ors_off_track", 0.0, "ORS on track for this intake score"),
    ("ors_reliable_improvement", 1.0, "reliable improvement on ORS since intake"),
    ("ors_reliable_improvement", 0.0, "no reliable improvement on ORS since intake"),
    ("ors_reliable_deterioration", 1.0, "reliable deterioration on ORS since intake"),
    ("ors_reliable_deterioration", 0.0, "no reliable deterioration on ORS since intake"),
    ("ors_sessions_since_obs", 2.0, "ORS last given 2 sessions ago"),
    ("ors_sessions_since_obs", 1.0, "ORS last given 1 session ago"),
    ("ors_sessions_since_obs", 0.0, "ORS given at this session"),
    # outcome, lower is better (PHQ-9): raw direction, then better / worse
    ("phq9_change_last", 3.0, "PHQ-9 fell 3 points since last session (better)"),
    ("phq9_change_last", -3.0, "PHQ-9 rose 3 points since last session (worse)"),
    ("phq9_change_intake", 7.0, "PHQ-9 fell 7 points since intake (better)"),
    ("phq9_current", 15.0, "PHQ-9 is 12 (clinical cutoff 10)"),
    ("phq9_intake", 7.0, "PHQ-9 at intake was 20"),
    ("phq9_slope", 1.5, "PHQ-9 improving about 1.5 points per session"),
    ("phq9_slope", -0.5, "PHQ-9 worsening about 0.5 points per session"),
    ("phq9_expected_dev", -4.0, "PHQ-9 is 4 points above the expected trajectory for this intake score (worse)"),
    ("phq9_expected_dev", 2.0, "PHQ-9 is 2 points below the expected trajectory for this intake score (better)"),
    ("phq9_dist_cutoff", -4.0, "PHQ-9 is 4 points above the clinical cutoff of 10 (clinical range)"),
    ("phq9_dist_cutoff", 3.0, "PHQ-9 is 3 points below the clinical cutoff of 10 (non-clinical range)"),
    ("phq9_off_track", 1.0, "PHQ-9 not on track for this intake score"),
    ("phq9_reliable_improvement", 0.0, "no reliable improvement on PHQ-9 since intake"),
    # attendance
    ("missed_total", 2.0, "2 missed appointments so far"),
    ("missed_total", 1.0, "1 missed appointment so far"),
    ("missed_total", 0.0, "no missed appointments so far"),
    ("missed_last", 1.0, "1 missed appointment since the last session"),
    ("missed_last", 0.0, "no missed appointments since the last session"),
    ("last_gap_days", 21.0, "21 days since the previous session"),
    ("last_gap_days", 1.0, "1 day since the previous session"),
    ("mean_gap_days", 10.5, "sessions on average 10.5 days apart"),
    ("days_in_treatment", 35.0, "in treatment for 35 days"),
    # landmark and covariates
    ("landmark", 2.0, "session 2 of treatment"),
    ("landmark", 8.0, "session 8 or later of treatment"),
    ("age", 22.0, "age 22"),
    ("age", 22.5, "age 22.5"),
    ("gender", "M", "gender: M"),
    # not in the spec: its name and value
    ("mystery_score", 3.25, "mystery_score: 3.2"),
    ("mystery_level", "high", "mystery_level: high"),
]


@pytest.mark.parametrize(("name", "value", "expected"), CASES, ids=[f"{n}={v}" for n, v, _ in CASES])
def test_text_per_feature_kind(name, value, expected):
    assert text(name, value) == expected
    assert feature_text(name, value, SPEC) == expected


def test_numbers_are_whole_when_integral_else_one_decimal():
    assert text("ors_current", 18.04) == "ORS is 18 (clinical cutoff 25)"
    assert text("ors_current", 17.96) == "ORS is 18 (clinical cutoff 25)"
    assert text("ors_current", 18.3) == "ORS is 18.3 (clinical cutoff 25)"
    # 27 - 14.7 is a hair off 12.3 in floating point
    assert text("phq9_current", 27 - 12.3) == "PHQ-9 is 12.3 (clinical cutoff 10)"
    assert text("srs_change_last", -0.04) == "alliance score (SRS) unchanged since last session"


def test_numpy_scalars_and_bools_are_numbers():
    assert text("missed_total", np.float64(2.0)) == "2 missed appointments so far"
    assert text("srs_any_drop", np.True_) == "alliance score (SRS) has dropped at least once"


def test_labels_fall_back_to_the_instrument_name_and_respect_its_direction():
    custom_outcome = Instrument(
        key="sleep",
        name="Sleep diary score",
        min=0,
        max=20,
        higher_is_better=False,
        role="outcome",
        cutoff=12,
        reliable_change=3,
    )
    custom_alliance = Instrument(
        key="bond", name="Bond scale", min=0, max=10, higher_is_better=False, role="alliance", cutoff=6
    )
    spec = FeatureSpec(
        max_landmark=8, off_track_z=1.0, instruments=(REG["gad7"], custom_outcome, custom_alliance, REG["wai_sr"])
    )
    assert text("sleep_current", 15.0, spec) == "Sleep diary score is 5 (clinical cutoff 12)"
    assert text("sleep_change_last", -2.0, spec) == "Sleep diary score rose 2 points since last session (worse)"
    assert text("gad7_current", 21.0, spec) == "GAD-7 is 0 (clinical cutoff 8)"
    assert text("wai_sr_current", 40.0, spec) == "alliance score (WAI-SR) is 40"
    # a lower-is-better alliance scale: normalised -2 means the raw score rose by 2, which is worse
    assert (
        text("bond_change_last", -2.0, spec) == "alliance score (Bond scale) rose 2 points since last session (worse)"
    )
    assert text("bond_min", 3.0, spec) == "worst alliance score (Bond scale) so far was 7"
    assert (
        text("bond_n_below_cutoff", 2.0, spec)
        == "alliance score (Bond scale) on the wrong side of the cutoff of 6 in 2 sessions so far"
    )
    assert text("bond_any_drop", 1.0, spec) == "alliance score (Bond scale) has worsened at least once"
    assert set(SHORT_LABELS) == {i.key for i in REG.values()}


def test_texts_read_the_feature_builder_output_in_raw_units():
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["a"] * 3, dtype="string"),
            "session_number": [1, 2, 3],
            "session_date": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-29"]),
            "missed_since_last": [0.0, 1.0, 0.0],
            "ors": [12.0, 14.0, 13.0],
            "phq9": [20.0, 18.0, 15.0],
            "srs": [38.0, 37.0, 33.0],
        }
    )
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["a"], dtype="string"),
            "status": pd.array(["ongoing"], dtype="string"),
            "age": [22.0],
            "gender": pd.array(["M"], dtype="string"),
        }
    )
    identity = Curve(intercept=(0,) * 8, slope=(1,) * 8, resid_sd=(1,) * 8)  # expected = intake score
    features = build_features(sessions, episodes, SPEC, ExpectedTrajectories({"ors": identity, "phq9": identity}))
    row = features.iloc[-1].to_dict()
    texts = {name: feature_text(name, row[name], SPEC) for name in SPEC.feature_columns()}
    assert texts["phq9_change_last"] == "PHQ-9 fell 3 points since last session (better)"
    assert texts["phq9_change_intake"] == "PHQ-9 fell 5 points since intake (better)"
    assert texts["phq9_current"] == "PHQ-9 is 15 (clinical cutoff 10)"
    assert texts["phq9_intake"] == "PHQ-9 at intake was 20"
    assert texts["phq9_slope"] == "PHQ-9 improving about 2.5 points per session"
    assert texts["phq9_dist_cutoff"] == "PHQ-9 is 5 points above the clinical cutoff of 10 (clinical range)"
    assert (
        texts["phq9_expected_dev"] == "PHQ-9 is 5 points below the expected trajectory for this intake score (better)"
    )
    assert texts["phq9_reliable_improvement"] == "no reliable improvement on PHQ-9 since intake"
    assert texts["ors_change_last"] == "ORS worsened 1 point since last session"
    assert texts["ors_expected_dev"] == "ORS is 1 point above the expected trajectory for this intake score"
    assert texts["srs_change_last"] == "alliance score (SRS) fell 4 points since last session"
    assert texts["srs_change_first"] == "alliance score (SRS) fell 5 points since the first session"
    assert texts["srs_min"] == "lowest alliance score (SRS) so far was 33"
    assert texts["srs_mean"] == "average alliance score (SRS) so far is 36"
    assert texts["srs_n_below_cutoff"] == "alliance score (SRS) below the cutoff of 36 in 1 session so far"
    assert texts["srs_any_drop"] == "alliance score (SRS) has dropped at least once"
    assert texts["last_gap_days"] == "21 days since the previous session"
    assert texts["days_in_treatment"] == "in treatment for 28 days"
    assert texts["missed_total"] == "1 missed appointment so far"
    assert texts["landmark"] == "session 3 of treatment"
    assert texts["gender"] == "gender: M"


# --- flags --------------------------------------------------------------------------------------


def test_flag_labels_cover_exactly_the_flags():
    assert list(FLAG_LABELS) == list(FLAGS)
    assert all(FLAG_LABELS.values())


def test_describe_flags_lists_firing_flags_in_flags_order():
    row = {
        "missed_appointments": True,
        "off_track": np.False_,
        "alliance_drop": np.True_,
        "alliance_below_cutoff": False,
        "no_reliable_improvement": True,
        "unrelated": True,
    }
    assert [f.model_dump() for f in describe_flags(row)] == [
        {"flag": "alliance_drop", "text": "alliance dropped since the last session"},
        {"flag": "no_reliable_improvement", "text": "no reliable improvement by session 4"},
        {"flag": "missed_appointments", "text": "missed appointments"},
    ]


def test_describe_flags_nan_or_absent_does_not_fire():
    assert describe_flags({"off_track": nan, "alliance_drop": None}) == []
    assert describe_flags({}) == []


# --- suggestions ----------------------------------------------------------------------------------


def test_every_flag_has_a_sourced_suggestion_and_nothing_else_is_in_the_table():
    assert set(SUGGESTIONS) == {*FLAGS, HIGH_RISK}
    for key, suggestion in SUGGESTIONS.items():
        assert isinstance(suggestion, Suggestion)
        assert suggestion.key == key
        assert suggestion.text.strip() and suggestion.source.strip()


def test_suggestions_one_per_firing_flag_in_flags_order():
    out = suggestions_for(["missed_appointments", "alliance_below_cutoff", "alliance_below_cutoff"], "moderate")
    assert [s.flag for s in out] == ["alliance_below_cutoff", "missed_appointments"]
    assert out[0].model_dump() == {
        "flag": "alliance_below_cutoff",
        "text": SUGGESTIONS["alliance_below_cutoff"].text,
        "source": SUGGESTIONS["alliance_below_cutoff"].source,
    }


def test_high_risk_suggestion_only_for_the_high_band():
    assert [s.flag for s in suggestions_for(["off_track"], "high")] == ["off_track", HIGH_RISK]
    assert [s.flag for s in suggestions_for([], "high")] == [HIGH_RISK]
    assert suggestions_for([], "moderate") == []
    assert suggestions_for([], "low") == []
    assert [s.flag for s in suggestions_for(list(reversed(FLAGS)), "low")] == list(FLAGS)


def test_suggestions_accept_describe_flags_output_and_a_flags_mapping():
    fired = {"off_track": True, "alliance_drop": True, "missed_appointments": False}
    by_name = suggestions_for([f.flag for f in describe_flags(fired)], "low")
    assert [s.flag for s in by_name] == ["alliance_drop", "off_track"]
    assert suggestions_for(fired, "low") == by_name


def test_unknown_flag_or_band_raises():
    with pytest.raises(ValueError, match="unknown clinical flag"):
        suggestions_for(["not_a_flag"], "low")
    with pytest.raises(ValueError, match="unknown risk band"):
        suggestions_for([], "severe")
