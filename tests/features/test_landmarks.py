"""build_features on a hand-worked clinic: every value of every row checked by hand.

Three clients, spec max_landmark = 5, instruments ORS (outcome, higher better,
cutoff 25, reliable change 5), PHQ-9 (outcome, LOWER better, range 0-27, cutoff
10, reliable change 6; normalised = 27 - raw, so its cutoff sits at 17) and SRS
(alliance, cutoff 36, drop of >= 1 flagged); covariates age and gender (levels
f, m). Trajectories are written by hand below, so expected scores are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec, infer_spec
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories

nan = np.nan
REG = default_registry()

SPEC = FeatureSpec(
    max_landmark=5,
    off_track_z=1.0,
    instruments=(REG["ors"], REG["srs"], REG["phq9"]),
    numeric_covariates=("age",),
    categorical_covariates={"gender": ("f", "m")},
)

# Expected normalised score at session k = intercept[k] + slope[k] * intake; residual SD resid_sd[k].
TRAJECTORIES = ExpectedTrajectories(
    {
        "ors": Curve(intercept=(0, 3, 5, 6, 7), slope=(1, 0.9, 0.9, 0.8, 0.8), resid_sd=(0, 2, 3, 4, 4)),
        "phq9": Curve(intercept=(0, 1, 2, 3, 4), slope=(1, 1, 1, 1, 1), resid_sd=(0, 1, 1, 2, 2)),
    }
)


def hand_sessions() -> pd.DataFrame:
    rows = [
        # client, k, date, missed, ors, srs, phq9
        ("a", 1, "2024-01-01", nan, 18, 35, nan),
        ("a", 2, "2024-01-08", 0, 21, nan, 20),  # SRS missing in the middle
        ("a", 3, "2024-01-15", nan, nan, 37, 14),  # ORS missing in the middle
        ("a", 4, "2024-01-29", 1, 26, 36, 12),
        ("a", 5, "2024-02-05", 2, 24, 34.5, 19),
        ("a", 6, "2024-02-12", 9, 0, 0, 27),  # past max_landmark: must not influence anything
        ("b", 1, "2024-03-01", 0, 30, 40, 9),
        ("b", 2, "2024-03-04", nan, 24, 38, 15),
        ("c", 1, "2024-02-01", 3, 25, 30, 10),
    ]
    frame = pd.DataFrame(
        rows, columns=["client_id", "session_number", "session_date", "missed_since_last", "ors", "srs", "phq9"]
    )
    frame["client_id"] = frame["client_id"].astype("string")
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    frame = frame.astype({"missed_since_last": float, "ors": float, "srs": float, "phq9": float})
    # Shuffled on purpose: the builder must sort for itself.
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def hand_episodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.array(["c", "a", "b"], dtype="string"),
            "status": pd.array(["ongoing", "dropout", "completed"], dtype="string"),
            "clinic_id": pd.array(["k2", "k1", "k1"], dtype="string"),
            "therapist_id": pd.array(["t3", "t1", "t2"], dtype="string"),
            "age": [19.0, 30.0, 45.0],
            "gender": pd.array(["nb", "f", "m"], dtype="string"),  # "nb" was not seen at fit time
        }
    )


# Rows, in output order: a1 a2 a3 a4 a5 b1 b2 c1.
EXPECTED_IDS = {
    "client_id": ["a", "a", "a", "a", "a", "b", "b", "c"],
    "landmark": [1, 2, 3, 4, 5, 1, 2, 1],
    "session_date": [
        "2024-01-01",
        "2024-01-08",
        "2024-01-15",
        "2024-01-29",
        "2024-02-05",
        "2024-03-01",
        "2024-03-04",
        "2024-02-01",
    ],
    "clinic_id": ["k1"] * 5 + ["k1"] * 2 + ["k2"],
    "therapist_id": ["t1"] * 5 + ["t2"] * 2 + ["t3"],
    "status": ["dropout"] * 5 + ["completed"] * 2 + ["ongoing"],
    "label": [1.0] * 5 + [0.0] * 2 + [nan],
}

EXPECTED_FEATURES = {
    # --- attendance. a: dates 0, 7, 14, 28, 35 days after intake; b: 0, 3; c: 0.
    "days_in_treatment": [0, 7, 14, 28, 35, 0, 3, 0],
    # days / (k - 1): 7/1, 14/2, 28/3, 35/4; b: 3/1.
    "mean_gap_days": [nan, 7, 7, 28 / 3, 8.75, nan, 3, nan],
    "last_gap_days": [nan, 7, 7, 14, 7, nan, 3, nan],
    # a: missed NaN, 0, NaN, 1, 2 -> running sum of the known ones (NaN while none known): NaN, 0, 0, 1, 3.
    "missed_total": [nan, 0, 0, 1, 3, 0, 0, 3],
    "missed_last": [nan, 0, nan, 1, 2, 0, nan, 3],
    # --- ORS (higher better, normalised = raw). a: 18, 21, -, 26, 24; b: 30, 24; c: 25.
    "ors_intake": [18, 18, 18, 18, 18, 30, 30, 25],
    "ors_current": [18, 21, 21, 26, 24, 30, 24, 25],
    # a3 has no ORS: the current score is from session 2, one session old.
    "ors_sessions_since_obs": [0, 0, 1, 0, 0, 0, 0, 0],
    "ors_change_intake": [nan, 3, 3, 8, 6, nan, -6, nan],
    # a4: 26 - 21 (the previous *observation*, session 2); a5: 24 - 26.
    "ors_change_last": [nan, 3, 3, 5, -2, nan, -6, nan],
    # a4 over (1,18),(2,21),(4,26): xbar 7/3, Sxx 14/3, Sxy 37/3 -> 37/14.
    # a5 adds (5,24): xbar 3, ybar 22.25, Sxx 10, Sxy 284 - 267 = 17 -> 1.7.
    "ors_slope": [nan, 3, 3, 37 / 14, 1.7, nan, -6, nan],
    # change >= 5: a4 (8), a5 (6). b2 change -6 <= -5: deterioration.
    "ors_reliable_improvement": [nan, 0, 0, 1, 1, nan, 0, nan],
    "ors_reliable_deterioration": [nan, 0, 0, 0, 0, nan, 1, nan],
    # current - 25; c sits exactly on the cutoff: 0, the healthy side for a higher-is-better scale.
    "ors_dist_cutoff": [-7, -4, -4, 1, -1, 5, -1, 0],
    # expected at the session of the current observation:
    # a1 0+1*18=18; a2, a3 (obs at 2) 3+0.9*18=19.2; a4 6+0.8*18=20.4; a5 7+0.8*18=21.4;
    # b1 30; b2 3+0.9*30=30; c1 25.
    "ors_expected_dev": [0, 1.8, 1.8, 5.6, 2.6, 0, -6, 0],
    # dev < -1 * SD: b2 -6 < -2. At k=1 SD is 0 and dev 0: not below -0.
    "ors_off_track": [0, 0, 0, 0, 0, 0, 1, 0],
    # --- PHQ-9 (lower better, normalised = 27 - raw; cutoff 10 -> 17).
    # a: -, 20, 14, 12, 19 -> -, 7, 13, 15, 8.  b: 9, 15 -> 18, 12.  c: 10 -> 17.
    "phq9_intake": [nan, 7, 7, 7, 7, 18, 18, 17],
    "phq9_current": [nan, 7, 13, 15, 8, 18, 12, 17],
    "phq9_sessions_since_obs": [nan, 0, 0, 0, 0, 0, 0, 0],
    "phq9_change_intake": [nan, nan, 6, 8, 1, nan, -6, nan],
    "phq9_change_last": [nan, nan, 6, 2, -7, nan, -6, nan],
    # a4 over (2,7),(3,13),(4,15): xbar 3, Sxx 2, Sxy 113 - 105 = 8 -> 4.
    # a5 adds (5,8): xbar 3.5, ybar 10.75, Sxx 5, Sxy 153 - 150.5 = 2.5 -> 0.5.
    "phq9_slope": [nan, nan, 6, 4, 0.5, nan, -6, nan],
    # a3: raw 20 -> 14 is exactly the reliable change of 6: counts. b2: 9 -> 15, exactly -6: deterioration.
    "phq9_reliable_improvement": [nan, nan, 1, 1, 0, nan, 0, nan],
    "phq9_reliable_deterioration": [nan, nan, 0, 0, 0, nan, 1, nan],
    # normalised current - 17 = 10 - raw. c: raw 10 -> 0, which for a lower-is-better scale is caseness.
    "phq9_dist_cutoff": [nan, -10, -4, -2, -9, 1, -5, 0],
    # expected = intercept[k] + intake: a2 1+7=8, a3 2+7=9, a4 3+7=10, a5 4+7=11; b1 18, b2 1+18=19; c1 17.
    "phq9_expected_dev": [nan, -1, 4, 5, -3, 0, -7, 0],
    # a2: -1 < -1*1 is false (strict). a5: -3 < -2. b2: -7 < -1.
    "phq9_off_track": [nan, 0, 0, 0, 1, 0, 1, 0],
    # --- SRS (alliance, cutoff 36, clinical below 36). a: 35, -, 37, 36, 34.5; b: 40, 38; c: 30.
    "srs_current": [35, 35, 37, 36, 34.5, 40, 38, 30],
    "srs_min": [35, 35, 35, 35, 34.5, 40, 38, 30],
    # a3 (35+37)/2; a4 108/3; a5 142.5/4.
    "srs_mean": [35, 35, 36, 36, 35.625, 40, 39, 30],
    "srs_change_first": [nan, nan, 2, 1, -0.5, nan, -2, nan],
    "srs_change_last": [nan, nan, 2, -1, -1.5, nan, -2, nan],
    # below 36: a's 35 and 34.5 (36 itself is not below); c's 30.
    "srs_n_below_cutoff": [1, 1, 1, 1, 2, 0, 0, 1],
    # a4: 37 -> 36 is a drop of exactly 1: flagged. b2: 40 -> 38.
    "srs_any_drop": [nan, nan, 0, 1, 1, nan, 1, nan],
    # --- covariates
    "age": [30, 30, 30, 30, 30, 45, 45, 19],
}
EXPECTED_GENDER = ["f"] * 5 + ["m"] * 2 + [nan]  # "nb" is not a fitted level


def expected_frame() -> pd.DataFrame:
    frame = pd.DataFrame(EXPECTED_IDS)
    for column in ("client_id", "clinic_id", "therapist_id", "status"):
        frame[column] = frame[column].astype("string")
    frame["landmark"] = frame["landmark"].astype("int64")
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    for column, values in EXPECTED_FEATURES.items():
        frame[column] = np.asarray(values, dtype=float)
    frame["gender"] = pd.Categorical(EXPECTED_GENDER, categories=pd.Index(["f", "m"], dtype=str))
    return frame


@pytest.fixture
def features() -> pd.DataFrame:
    return build_features(hand_sessions(), hand_episodes(), SPEC, TRAJECTORIES)


def test_columns_are_ids_then_spec_features(features):
    assert list(features.columns) == [
        "client_id",
        "landmark",
        "session_date",
        "clinic_id",
        "therapist_id",
        "status",
        "label",
        *SPEC.feature_columns()[1:],
    ]
    assert set(EXPECTED_FEATURES) | {"gender"} == set(SPEC.feature_columns()[1:])


def test_every_value_matches_the_hand_worked_numbers(features):
    tm.assert_frame_equal(features, expected_frame(), check_exact=False, rtol=1e-12, atol=1e-12)


def test_output_is_sorted_with_a_range_index(features):
    assert isinstance(features.index, pd.RangeIndex)
    assert list(zip(features["client_id"], features["landmark"], strict=True)) == sorted(
        zip(features["client_id"], features["landmark"], strict=True)
    )


def test_flags_are_float_and_categoricals_use_spec_levels(features):
    for column in ("ors_off_track", "ors_reliable_improvement", "srs_any_drop", "label"):
        assert features[column].dtype == np.float64
    assert list(features["gender"].cat.categories) == ["f", "m"]


def test_sessions_past_max_landmark_are_ignored():
    sessions = hand_sessions()
    wild = sessions["session_number"] == 6
    sessions.loc[wild, ["ors", "srs", "phq9", "missed_since_last"]] = [40.0, 40.0, 0.0, 0.0]
    sessions.loc[wild, "session_date"] = pd.Timestamp("2030-01-01")
    tm.assert_frame_equal(
        build_features(sessions, hand_episodes(), SPEC, TRAJECTORIES),
        expected_frame(),
        check_exact=False,
        rtol=1e-12,
        atol=1e-12,
    )


def test_smaller_max_landmark_keeps_only_early_rows():
    spec = FeatureSpec(
        max_landmark=2,
        off_track_z=1.0,
        instruments=SPEC.instruments,
        numeric_covariates=SPEC.numeric_covariates,
        categorical_covariates=SPEC.categorical_covariates,
    )
    got = build_features(hand_sessions(), hand_episodes(), spec, TRAJECTORIES)
    want = expected_frame()
    want = want[want["landmark"] <= 2].reset_index(drop=True)
    tm.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=1e-12)


def test_off_track_z_scales_the_threshold():
    spec = FeatureSpec(
        max_landmark=5,
        off_track_z=4.0,
        instruments=SPEC.instruments,
        numeric_covariates=SPEC.numeric_covariates,
        categorical_covariates=SPEC.categorical_covariates,
    )
    got = build_features(hand_sessions(), hand_episodes(), spec, TRAJECTORIES)
    # With z = 4: b2 ORS -6 < -8? no. a5 PHQ-9 -3 < -8? no. b2 PHQ-9 -7 < -4: yes.
    np.testing.assert_array_equal(got["ors_off_track"], [0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(got["phq9_off_track"], [nan, 0, 0, 0, 0, 0, 1, 0])


def test_spec_columns_present_even_when_data_lack_them():
    sessions = hand_sessions().drop(columns=["phq9", "missed_since_last"])
    episodes = hand_episodes().drop(columns=["gender", "clinic_id", "therapist_id"])
    got = build_features(sessions, episodes, SPEC, TRAJECTORIES)
    assert list(got.columns) == [
        "client_id",
        "landmark",
        "session_date",
        "status",
        "label",
        *SPEC.feature_columns()[1:],
    ]
    for column in [*(c for c in got.columns if c.startswith("phq9_")), "missed_total", "missed_last"]:
        assert got[column].isna().all(), column
    assert got["gender"].isna().all()
    assert list(got["gender"].cat.categories) == ["f", "m"]
    # the rest is untouched
    tm.assert_series_equal(got["ors_slope"], expected_frame()["ors_slope"], check_exact=False, rtol=1e-12)


def test_trajectories_without_an_instrument_give_nan_expectation():
    got = build_features(
        hand_sessions(), hand_episodes(), SPEC, ExpectedTrajectories({"ors": TRAJECTORIES.curves["ors"]})
    )
    assert got["phq9_expected_dev"].isna().all() and got["phq9_off_track"].isna().all()
    assert got["ors_expected_dev"].notna().all()


def test_client_without_episode_gets_nan_status_label_and_covariates():
    sessions = pd.concat(
        [
            hand_sessions(),
            pd.DataFrame(
                {
                    "client_id": pd.array(["d"], dtype="string"),
                    "session_number": [1],
                    "session_date": pd.to_datetime(["2024-05-01"]),
                    "missed_since_last": [nan],
                    "ors": [nan],
                    "srs": [nan],
                    "phq9": [nan],
                }
            ),
        ],
        ignore_index=True,
    )
    got = build_features(sessions, hand_episodes(), SPEC, TRAJECTORIES)
    row = got[got["client_id"] == "d"].iloc[0]
    assert pd.isna(row["status"]) and np.isnan(row["label"]) and np.isnan(row["age"]) and pd.isna(row["gender"])
    # no score at all yet: every instrument feature is NaN, attendance still known
    instrument_columns = [c for c in got.columns if c.split("_")[0] in ("ors", "srs", "phq9")]
    assert row[instrument_columns].isna().all()
    assert row["days_in_treatment"] == 0
    # the other clients are unchanged
    tm.assert_frame_equal(
        got[got["client_id"] != "d"].reset_index(drop=True), expected_frame(), check_exact=False, rtol=1e-12, atol=1e-12
    )


def test_episode_without_sessions_gets_no_rows():
    episodes = pd.concat(
        [
            hand_episodes(),
            pd.DataFrame(
                {
                    "client_id": pd.array(["z"], dtype="string"),
                    "status": pd.array(["dropout"], dtype="string"),
                    "clinic_id": pd.array(["k1"], dtype="string"),
                    "therapist_id": pd.array(["t9"], dtype="string"),
                    "age": [50.0],
                    "gender": pd.array(["m"], dtype="string"),
                }
            ),
        ],
        ignore_index=True,
    )
    got = build_features(hand_sessions(), episodes, SPEC, TRAJECTORIES)
    tm.assert_frame_equal(got, expected_frame(), check_exact=False, rtol=1e-12, atol=1e-12)


def test_fractional_scores_reliable_change_of_exactly_the_threshold_counts():
    # ORS and SRS are marked in tenths. In floating point 32.3 - 31.3 < 1 and 8.2 - 3.2 < 5, yet
    # PCOMS counts a drop of 1.0 and a gain of 5.0 as reaching the threshold.
    assert 32.3 - 31.3 < 1 and 8.2 - 3.2 < 5
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["a", "a"], dtype="string"),
            "session_number": [1, 2],
            "session_date": pd.to_datetime(["2024-01-01", "2024-01-08"]),
            "srs": [32.3, 31.3],
            "ors": [3.2, 8.2],
        }
    )
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a"], dtype="string"), "status": pd.array(["ongoing"], dtype="string")}
    )
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["srs"]))
    got = build_features(sessions, episodes, spec, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["srs_any_drop"], [nan, 1.0])
    np.testing.assert_array_equal(got["ors_reliable_improvement"], [nan, 1.0])


def test_duplicate_session_numbers_are_rejected():
    sessions = pd.concat([hand_sessions(), hand_sessions().iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="same session_number twice"):
        build_features(sessions, hand_episodes(), SPEC, TRAJECTORIES)


def test_spec_and_trajectories_are_inferred_and_fitted_when_not_given():
    sessions, episodes = hand_sessions(), hand_episodes()
    got = build_features(sessions, episodes)
    spec = infer_spec(sessions, episodes, default_registry(), FeatureConfig())
    assert spec.max_landmark == 8 and [i.key for i in spec.instruments] == ["ors", "srs", "phq9"]
    assert list(got.columns)[7:] == spec.feature_columns()[1:]
    # nine sessions, none past 8
    assert len(got) == 9
    # fewer than 5 clients at every k: no fitted curve, so no expectation
    assert got["ors_expected_dev"].isna().all()


def test_empty_sessions_give_an_empty_frame_with_the_spec_columns():
    sessions = hand_sessions().iloc[:0]
    got = build_features(sessions, hand_episodes(), SPEC, TRAJECTORIES)
    assert len(got) == 0
    assert list(got.columns)[7:] == SPEC.feature_columns()[1:]
