"""Clinical flags on hand-built landmark rows: each flag fires exactly when its rule says.

Feature rows are written by hand (only the columns a rule reads), so every
expected flag is known without running the feature builder; one test runs the
builder to check the flags read its output the way the features mean it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.flags import FLAGS, clinical_flags
from dropout_risk.features.instruments import Instrument, default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories

nan = np.nan
REG = default_registry()

ORS_SRS = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["srs"]))
# PHQ-9 is lower-is-better; WAI-SR is an alliance measure with neither cutoff nor reliable change.
PHQ_WAI = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["phq9"], REG["wai_sr"]))
PHQ_ONLY = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["phq9"],))


def rows(**columns) -> pd.DataFrame:
    return pd.DataFrame({name: np.asarray(values, dtype=float) for name, values in columns.items()})


def flag(features: pd.DataFrame, spec: FeatureSpec, name: str) -> list[bool]:
    return clinical_flags(features, spec)[name].tolist()


# --- shape ------------------------------------------------------------------------------------


def test_one_boolean_column_per_flag_on_the_input_index():
    features = rows(landmark=[1, 2, 3]).set_axis([10, 20, 30])
    out = clinical_flags(features, ORS_SRS)
    assert list(out.columns) == list(FLAGS)
    assert list(out.index) == [10, 20, 30]
    assert all(out[c].dtype == bool for c in out.columns)


def test_empty_frame_gives_empty_flags():
    out = clinical_flags(rows(landmark=[]), ORS_SRS)
    assert len(out) == 0 and list(out.columns) == list(FLAGS)


# --- alliance_below_cutoff ------------------------------------------------------------------


def test_srs_below_36_fires_and_36_does_not():
    features = rows(srs_current=[35.9, 36.0, 36, 40.0, 0.0, nan])
    assert flag(features, ORS_SRS, "alliance_below_cutoff") == [True, False, False, False, True, False]


def test_alliance_below_cutoff_of_a_lower_is_better_alliance_scale_reads_the_raw_score():
    # Features hold normalised (higher-is-better) scores: raw = 10 - normalised here.
    reversed_alliance = Instrument(
        key="xal",
        name="reversed alliance",
        min=0,
        max=10,
        higher_is_better=False,
        role="alliance",
        cutoff=6,
        reliable_change=2,
    )
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(reversed_alliance,))
    # normalised 4 -> raw 6 (>= 6: clinical); 4.5 -> raw 5.5 (not); 0 -> raw 10 (clinical); 10 -> raw 0 (not)
    features = rows(xal_current=[4.0, 4.5, 0.0, 10.0, nan])
    assert flag(features, spec, "alliance_below_cutoff") == [True, False, True, False, False]


def test_an_alliance_scale_without_cutoff_never_fires_below_cutoff():
    features = rows(wai_sr_current=[12.0, 20.0, nan])
    assert flag(features, PHQ_WAI, "alliance_below_cutoff") == [False, False, False]


# --- alliance_drop ------------------------------------------------------------------------------


def test_srs_drop_of_one_fires_and_half_a_point_does_not():
    features = rows(srs_change_last=[-1.0, -0.5, -3.0, 0.0, 2.0, nan])
    assert flag(features, ORS_SRS, "alliance_drop") == [True, False, True, False, False, False]


def test_srs_drop_of_one_in_tenths_survives_float_rounding():
    # 31.3 - 32.3 is -0.9999999999999964 in floating point, yet it is the drop of 1 PCOMS flags
    # (and the one the feature builder's srs_any_drop counts).
    features = rows(srs_change_last=[31.3 - 32.3, 35.1 - 36.1, 36.2 - 37.1])
    assert flag(features, ORS_SRS, "alliance_drop") == [True, True, False]


def test_alliance_without_reliable_change_flags_any_fall():
    features = rows(wai_sr_change_last=[-1.0, -0.1, 0.0, 3.0, nan])
    assert flag(features, PHQ_WAI, "alliance_drop") == [True, True, False, False, False]


def test_alliance_flags_agree_with_the_feature_builder_on_scores_in_tenths():
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["a"] * 4 + ["b"] * 3, dtype="string"),
            "session_number": [1, 2, 3, 4, 1, 2, 3],
            "session_date": pd.to_datetime(
                ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-01", "2024-01-08", "2024-01-15"]
            ),
            "missed_since_last": [0.0] * 7,
            "ors": [20.0] * 7,
            "srs": [37.3, 36.3, 36.0, 35.9, 32.3, 31.3, 31.3],
        }
    )
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["a", "b"], dtype="string"),
            "status": pd.array(["completed", "dropout"], dtype="string"),
        }
    )
    trajectories = ExpectedTrajectories({"ors": Curve(intercept=(0,) * 8, slope=(1,) * 8, resid_sd=(1,) * 8)})
    features = build_features(sessions, episodes, ORS_SRS, trajectories)
    out = clinical_flags(features, ORS_SRS)
    # a: 37.3 -> 36.3 is a drop of 1 (fires), -0.3 and -0.1 do not; 35.9 is below 36.
    # b: 32.3 -> 31.3 is a drop of 1; 31.3 -> 31.3 is none.
    assert out["alliance_drop"].tolist() == [False, True, False, False, False, True, False]
    assert out["alliance_below_cutoff"].tolist() == [False, False, False, True, True, True, True]
    # A drop flagged on a row is also counted by the builder's own running drop indicator.
    assert (features.loc[out["alliance_drop"], "srs_any_drop"] == 1).all()


# --- no_reliable_improvement ---------------------------------------------------------------------


def test_no_reliable_improvement_only_from_landmark_4():
    features = rows(landmark=[1, 2, 3, 4, 5, 8], ors_reliable_improvement=[0, 0, 0, 0, 0, 0])
    assert flag(features, ORS_SRS, "no_reliable_improvement") == [False, False, False, True, True, True]


def test_no_reliable_improvement_needs_a_known_outcome_and_none_improved():
    features = rows(landmark=[4, 4, 4], ors_reliable_improvement=[0, 1, nan])
    assert flag(features, ORS_SRS, "no_reliable_improvement") == [True, False, False]


def test_no_reliable_improvement_with_a_lower_is_better_outcome():
    features = rows(landmark=[3, 4, 6, 6], phq9_reliable_improvement=[0, 0, 1, nan])
    assert flag(features, PHQ_WAI, "no_reliable_improvement") == [False, True, False, False]


def test_any_outcome_improving_reliably_clears_no_reliable_improvement():
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["phq9"]))
    features = rows(
        landmark=[5, 5, 5, 5, 5],
        ors_reliable_improvement=[0, 0, 1, nan, nan],
        phq9_reliable_improvement=[0, 1, 0, 0, nan],
    )
    assert flag(features, spec, "no_reliable_improvement") == [True, False, False, True, False]


def test_no_reliable_improvement_ignores_outcomes_without_reliable_change():
    # HAM-D has no reliable-change amount: it cannot tell improvement, so it cannot raise the flag.
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["hamd17"],))
    features = rows(landmark=[6, 6], hamd17_reliable_improvement=[0, nan])
    assert flag(features, spec, "no_reliable_improvement") == [False, False]


def test_no_reliable_improvement_without_landmark_never_fires():
    features = rows(ors_reliable_improvement=[0, 0])
    assert flag(features, ORS_SRS, "no_reliable_improvement") == [False, False]


# --- off_track ------------------------------------------------------------------------------------


def test_off_track_fires_on_any_outcome_off_track():
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["phq9"]))
    features = rows(ors_off_track=[1, 0, 0, nan, nan, 1], phq9_off_track=[0, 0, 1, 1, nan, nan])
    assert flag(features, spec, "off_track") == [True, False, True, True, False, True]


def test_off_track_reads_only_outcome_instruments():
    # An "off_track" column named after the alliance scale is not an outcome signal.
    features = rows(srs_off_track=[1, 1], ors_off_track=[0, nan])
    assert flag(features, ORS_SRS, "off_track") == [False, False]


# --- missed_appointments ------------------------------------------------------------------------------


def test_missed_appointments_rule():
    features = rows(missed_last=[0, 1, 0, 0, 1, nan, nan, 3, 0], missed_total=[0, 1, 1, 2, 2, 2, nan, nan, nan])
    assert flag(features, ORS_SRS, "missed_appointments") == [False, True, False, True, True, True, False, True, False]


# --- missing data and specs without the instruments ----------------------------------------------


def test_all_missing_data_never_fires():
    columns = [
        "landmark",
        "missed_last",
        "missed_total",
        "srs_current",
        "srs_change_last",
        "ors_reliable_improvement",
        "ors_off_track",
    ]
    features = rows(**{c: [nan, nan] for c in columns})
    assert not clinical_flags(features, ORS_SRS).to_numpy().any()


def test_absent_columns_never_fire():
    features = rows(landmark=[4, 8])  # a row that knows only how far treatment is
    for spec in (ORS_SRS, PHQ_WAI, PHQ_ONLY):
        assert not clinical_flags(features, spec).to_numpy().any()


def test_missing_landmark_with_improvement_data_does_not_fire():
    features = rows(landmark=[nan, 4], ors_reliable_improvement=[0, 0])
    assert flag(features, ORS_SRS, "no_reliable_improvement") == [False, True]


def test_spec_without_alliance_instruments_never_fires_alliance_flags():
    # SRS columns that would fire under an SRS spec are ignored when the spec has no alliance scale.
    features = rows(
        landmark=[4, 4],
        srs_current=[20.0, 30.0],
        srs_change_last=[-5.0, -2.0],
        wai_sr_current=[12.0, 12.0],
        wai_sr_change_last=[-10.0, -1.0],
    )
    out = clinical_flags(features, PHQ_ONLY)
    assert not out["alliance_below_cutoff"].any()
    assert not out["alliance_drop"].any()
    # ... while the same rows do fire under a spec that has SRS.
    assert clinical_flags(features, ORS_SRS)[["alliance_below_cutoff", "alliance_drop"]].all().all()


def test_flags_read_each_row_on_its_own():
    features = rows(
        landmark=[4, 1, 6],
        srs_current=[30.0, 39.0, nan],
        srs_change_last=[nan, -2.0, 0.0],
        ors_reliable_improvement=[0, 0, 1],
        ors_off_track=[nan, 1, 0],
        missed_last=[0, 0, 2],
        missed_total=[0, 0, 2],
    )
    out = clinical_flags(features, ORS_SRS)
    expected = pd.DataFrame(
        {
            "alliance_below_cutoff": [True, False, False],
            "alliance_drop": [False, True, False],
            "no_reliable_improvement": [True, False, False],
            "off_track": [False, True, False],
            "missed_appointments": [False, False, True],
        }
    )
    pd.testing.assert_frame_equal(out, expected)
    # Reordering rows reorders the flags and changes nothing else.
    shuffled = features.iloc[[2, 0, 1]]
    pd.testing.assert_frame_equal(clinical_flags(shuffled, ORS_SRS), expected.iloc[[2, 0, 1]])


@pytest.mark.parametrize("dtype", ["float64", "Float64", "int64"])
def test_flags_accept_nullable_and_integer_columns(dtype):
    features = pd.DataFrame(
        {"landmark": [4, 5], "missed_last": [1, 0], "missed_total": [1, 2], "ors_reliable_improvement": [0, 1]}
    ).astype(dtype)
    out = clinical_flags(features, ORS_SRS)
    assert out["missed_appointments"].tolist() == [True, True]
    assert out["no_reliable_improvement"].tolist() == [True, False]
