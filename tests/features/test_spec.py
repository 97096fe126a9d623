"""FeatureSpec: column order, groups, inference, JSON round trip, user-declared instruments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.config import FeatureConfig, ProjectSettings, load_settings
from dropout_risk.features.instruments import Instrument, default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec, infer_spec, level_text
from dropout_risk.features.trajectories import ExpectedTrajectories, fit_expected_trajectories

REG = default_registry()

OUTCOME = [
    "intake",
    "current",
    "sessions_since_obs",
    "change_intake",
    "change_last",
    "slope",
    "reliable_improvement",
    "reliable_deterioration",
    "dist_cutoff",
    "expected_dev",
    "off_track",
]
ALLIANCE = ["current", "min", "mean", "change_first", "change_last", "n_below_cutoff", "any_drop"]
ATTENDANCE = ["days_in_treatment", "mean_gap_days", "last_gap_days", "missed_total", "missed_last"]

# A scale we do not ship. Range 30-210 is the PANSS total; cutoff and reliable change are illustrative.
PANSS = Instrument(
    key="panss",
    name="Positive and Negative Syndrome Scale",
    min=30,
    max=210,
    higher_is_better=False,
    role="outcome",
    cutoff=58,
    reliable_change=15,
)


def full_spec() -> FeatureSpec:
    return FeatureSpec(
        max_landmark=8,
        off_track_z=1.0,
        instruments=(REG["ors"], REG["srs"], REG["phq9"]),
        numeric_covariates=("age",),
        categorical_covariates={"gender": ("f", "m")},
    )


def test_feature_columns_in_fixed_order():
    assert full_spec().feature_columns() == [
        "landmark",
        *ATTENDANCE,
        *(f"ors_{s}" for s in OUTCOME),
        *(f"phq9_{s}" for s in OUTCOME),
        *(f"srs_{s}" for s in ALLIANCE),
        "age",
        "gender",
    ]


def test_groups_partition_the_features_except_landmark():
    spec = full_spec()
    groups = spec.groups()
    assert list(groups) == ["attendance", "outcome", "alliance", "covariates"]
    flat = [c for columns in groups.values() for c in columns]
    assert flat == spec.feature_columns()[1:]
    assert all("landmark" not in columns for columns in groups.values())
    assert groups["covariates"] == ["age", "gender"]


def test_columns_for_adds_landmark_and_keeps_feature_order():
    spec = full_spec()
    assert spec.columns_for(["alliance"]) == ["landmark", *(f"srs_{s}" for s in ALLIANCE)]
    assert spec.columns_for(["covariates", "attendance"]) == ["landmark", *ATTENDANCE, "age", "gender"]
    assert spec.columns_for([]) == ["landmark"]
    assert spec.columns_for(spec.groups()) == spec.feature_columns()
    assert spec.columns_for("outcome") == spec.columns_for(["outcome"])


def test_unknown_group_is_named_in_the_error():
    with pytest.raises(ValueError, match="alliences"):
        full_spec().columns_for(["outcome", "alliences"])


def test_empty_groups_when_a_role_is_absent():
    spec = FeatureSpec(max_landmark=4, off_track_z=1.0, instruments=(REG["ors"],))
    assert spec.groups()["alliance"] == [] and spec.groups()["covariates"] == []
    assert spec.columns_for(["alliance"]) == ["landmark"]


def test_round_trip_through_json():
    spec = full_spec()
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.feature_columns() == spec.feature_columns()
    assert isinstance(again.categorical_covariates["gender"], tuple)


def test_unknown_format_is_refused():
    data = full_spec().to_dict() | {"format": 99}
    with pytest.raises(ValueError, match="format"):
        FeatureSpec.from_dict(data)


@pytest.mark.parametrize("covariate", ["ors_current", "label", "session_date"])
def test_clashing_column_names_are_refused(covariate):
    with pytest.raises(ValueError, match=covariate):
        FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"],), numeric_covariates=(covariate,))


def sessions_frame(**scores) -> pd.DataFrame:
    n = len(next(iter(scores.values())))
    return pd.DataFrame(
        {
            "client_id": pd.array([f"c{i}" for i in range(n)], dtype="string"),
            "session_number": np.ones(n, dtype=np.int64),
            "session_date": pd.Timestamp("2024-01-01"),
            **{k: np.asarray(v, dtype=float) for k, v in scores.items()},
        }
    )


def test_infer_spec_instruments_need_a_score_and_follow_registry_order():
    # Columns in a different order than the registry; gad7 is present but never filled in.
    sessions = sessions_frame(srs=[36, 38], gad7=[np.nan, np.nan], phq9=[np.nan, 12], ors=[20, np.nan])
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["c0", "c1"], dtype="string"),
            "status": pd.array(["dropout", "completed"], dtype="string"),
        }
    )
    spec = infer_spec(sessions, episodes, REG, FeatureConfig(max_landmark=5, off_track_z=1.5))
    assert [i.key for i in spec.instruments] == ["ors", "srs", "phq9"]
    assert (spec.max_landmark, spec.off_track_z) == (5, 1.5)
    assert spec.numeric_covariates == () and spec.categorical_covariates == {}


def test_infer_spec_covariates():
    sessions = sessions_frame(ors=[20, 25, 30])
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["c0", "c1", "c2"], dtype="string"),
            "status": pd.array(["dropout", "completed", "ongoing"], dtype="string"),
            "clinic_id": pd.array(["k1", "k1", "k2"], dtype="string"),
            "therapist_id": [1, 2, 3],  # numeric, but an id: never a covariate
            "gender": pd.array(["m", None, "f"], dtype="string"),
            "age": [30.0, np.nan, 40.0],
            "sessions_planned": [12, 8, 10],
            "employed": [True, False, True],
            "referral": pd.Categorical(["gp", "self", "gp"]),
            "intake_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),  # date: skipped
        }
    )
    spec = infer_spec(sessions, episodes, REG, FeatureConfig())
    assert spec.numeric_covariates == ("age", "sessions_planned", "employed")
    assert spec.categorical_covariates == {"gender": ("f", "m"), "referral": ("gp", "self")}
    got = build_features(sessions, episodes, spec)
    assert got["age"].dtype == np.float64 and got["employed"].tolist() == [1.0, 0.0, 1.0]
    assert got["gender"].tolist()[0] == "m" and pd.isna(got["gender"].tolist()[1])
    assert list(got["referral"].cat.categories) == ["gp", "self"]


def test_numeric_codes_declared_categorical(tmp_path):
    """A 1/2/3 arm code is a category when the config says so; 2 and 2.0 are the same level."""
    config_file = tmp_path / "c.toml"
    config_file.write_text('[features]\ncategorical_covariates = ["arm"]\n')
    config = load_settings(ProjectSettings, config_file).features
    assert config.categorical_covariates == ["arm"]
    sessions = sessions_frame(ors=[20, 25, 30, 22])
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["c0", "c1", "c2", "c3"], dtype="string"),
            "status": pd.array(["dropout", "completed", "dropout", "completed"], dtype="string"),
            "arm": [1.0, 2.0, np.nan, 3.0],  # a missing value makes the codes float
            "age": [30, 40, 50, 60],
        }
    )
    spec = infer_spec(sessions, episodes, REG, config)
    assert spec.numeric_covariates == ("age",)
    assert spec.categorical_covariates == {"arm": ("1", "2", "3")}
    assert infer_spec(sessions, episodes, REG, FeatureConfig()).numeric_covariates == ("arm", "age")
    # New data with integer codes: the same levels, not unseen ones.
    later = episodes.assign(arm=pd.array([3, 1, 2, pd.NA], dtype="Int64"))
    got = build_features(sessions, later, spec)
    assert got["arm"].tolist()[:3] == ["3", "1", "2"] and pd.isna(got["arm"].tolist()[3])
    assert level_text(2) == level_text(2.0) == level_text(np.float64(2.0)) == "2" and level_text(2.5) == "2.5"


def test_user_declared_instrument_is_picked_up_without_code_changes():
    registry = REG.with_extra([PANSS])
    rows = []
    for i in range(6):
        for k, raw in enumerate([100 - i, 90 - i, 80 - 2 * i], start=1):
            rows.append(
                {
                    "client_id": f"p{i}",
                    "session_number": k,
                    "session_date": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=k),
                    "panss": float(raw),
                }
            )
    sessions = pd.DataFrame(rows).astype({"client_id": "string"})
    episodes = pd.DataFrame(
        {
            "client_id": pd.array([f"p{i}" for i in range(6)], dtype="string"),
            "status": pd.array(["completed"] * 6, dtype="string"),
        }
    )

    spec = infer_spec(sessions, episodes, registry, FeatureConfig(max_landmark=3))
    assert [i.key for i in spec.instruments] == ["panss"]
    assert spec.groups()["outcome"] == [f"panss_{s}" for s in OUTCOME]
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # travels with the model

    trajectories = fit_expected_trajectories(sessions, spec)
    assert "panss" in trajectories
    got = build_features(sessions, episodes, spec, trajectories)
    first = got[got["client_id"] == "p0"].reset_index(drop=True)
    # lower is better: normalised = 30 + 210 - raw; raw 100, 90, 80 -> 140, 150, 160
    np.testing.assert_array_equal(first["panss_current"], [140, 150, 160])
    np.testing.assert_array_equal(first["panss_change_intake"], [np.nan, 10, 20])
    np.testing.assert_array_equal(first["panss_reliable_improvement"], [np.nan, 0, 1])  # 20 >= 15
    # cutoff 58 -> normalised 182: raw 80 is 22 points on the clinical side
    np.testing.assert_array_equal(first["panss_dist_cutoff"], [-42, -32, -22])
    assert first["panss_expected_dev"].notna().all()


def test_spec_is_what_build_features_uses_even_if_scoring_data_differ():
    spec = full_spec()
    sessions = sessions_frame(ors=[20, 25], gad7=[5, 6])  # no srs/phq9; gad7 not in the spec
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["c0", "c1"], dtype="string"),
            "status": pd.array(["ongoing", "ongoing"], dtype="string"),
            "new_covariate": [1.0, 2.0],
        }
    )
    got = build_features(sessions, episodes, spec, ExpectedTrajectories({}))
    assert list(got.columns)[5:] == spec.feature_columns()[1:]
    assert not any(c.startswith("gad7") for c in got.columns) and "new_covariate" not in got
