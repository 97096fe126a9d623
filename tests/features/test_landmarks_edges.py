"""Edges of the landmark table's layout the hand-worked clinic does not reach."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import ClientHistory, build_features, client_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories

nan = np.nan
REG = default_registry()
SPEC = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"],), numeric_covariates=("age",))


def sessions_of(*clients: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.array(list(clients), dtype="string"),
            "session_number": np.ones(len(clients), dtype=np.int64),
            "session_date": pd.to_datetime(["2024-01-01"] * len(clients)),
            "ors": np.full(len(clients), 20.0),
        }
    )


def test_a_client_without_an_episode_beside_the_only_episode_row_gets_nan_episode_values():
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a"], dtype="string"), "status": pd.array(["dropout"], dtype="string"), "age": [40.0]}
    )
    got = build_features(sessions_of("a", "b"), episodes, SPEC, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["label"], [1.0, nan])
    np.testing.assert_array_equal(got["age"], [40.0, nan])
    assert got["status"].iloc[0] == "dropout" and pd.isna(got["status"].iloc[1])


def test_a_client_with_two_episode_rows_is_refused_with_what_is_wrong():
    episodes = pd.DataFrame({"client_id": pd.array(["a", "a"], dtype="string"), "status": ["dropout", "completed"]})
    with pytest.raises(ValueError, match=r"^episodes: a client has more than one episode row$"):
        build_features(sessions_of("a"), episodes, SPEC, ExpectedTrajectories({}))


def test_a_numeric_covariate_written_as_other_text_is_missing():
    # Read as pd.to_numeric(errors="coerce"): "unknown" is a missing age, not an error.
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(["a", "b"], dtype="string"),
            "status": pd.array(["dropout", "ongoing"], dtype="string"),
            "age": pd.array(["40", "unknown"], dtype="string"),
        }
    )
    got = build_features(sessions_of("a", "b"), episodes, SPEC, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["age"], [40.0, nan])


def test_sessions_without_any_episode_rows_get_missing_categorical_covariates():
    spec = FeatureSpec(
        max_landmark=8, off_track_z=1.0, instruments=(REG["ors"],), categorical_covariates={"gender": ("f", "m")}
    )
    episodes = pd.DataFrame(
        {
            "client_id": pd.array([], dtype="string"),
            "status": pd.array([], dtype="string"),
            "gender": pd.array([], dtype="string"),
        }
    )
    got = build_features(sessions_of("a", "b"), episodes, spec, ExpectedTrajectories({}))
    assert got["gender"].isna().all() and list(got["gender"].cat.categories) == ["f", "m"]
    assert got["label"].isna().all()


def test_an_episode_without_a_status_has_an_unknown_label():
    # The contract requires a status, but the table must not guess one: neither dropout nor completed.
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a", "b"], dtype="string"), "status": pd.array([None, "dropout"], dtype="string")}
    )
    got = build_features(sessions_of("a", "b"), episodes, SPEC, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["label"], [nan, 1.0])


@pytest.mark.parametrize("column", ["client_id", "session_number"])
def test_a_session_without_its_client_or_number_is_refused_with_which_is_missing(column):
    sessions = sessions_of("a", "b")
    sessions[column] = sessions[column].astype("Float64" if column == "session_number" else "string")
    sessions.loc[1, column] = None
    episodes = pd.DataFrame({"client_id": pd.array(["a", "b"], dtype="string"), "status": ["dropout", "ongoing"]})
    with pytest.raises(ValueError, match=rf"^sessions: {column} is missing in some rows$"):
        build_features(sessions, episodes, SPEC, ExpectedTrajectories({}))


def test_a_repeated_later_session_number_is_refused():
    # Not only a repeated first session: client b's session 2 twice.
    sessions = pd.concat([sessions_of("a", "b"), sessions_of("b", "b")], ignore_index=True)
    sessions["session_number"] = np.array([1, 1, 2, 2], dtype=np.int64)
    episodes = pd.DataFrame({"client_id": pd.array(["a", "b"], dtype="string"), "status": ["dropout", "ongoing"]})
    with pytest.raises(ValueError, match=r"^sessions: a client has the same session_number twice$"):
        build_features(sessions, episodes, SPEC, ExpectedTrajectories({}))


# --- the service's one-client path ------------------------------------------------------------


def history(scores: dict[str, list[float]], covariates: dict[str, object]) -> ClientHistory:
    n = len(next(iter(scores.values())))
    dates = np.datetime64("2024-01-01", "ns") + np.arange(n) * np.timedelta64(7, "D")
    return ClientHistory(
        session_number=np.arange(1, n + 1, dtype=np.int64),
        date_ns=dates.astype(np.int64),
        missed=np.full(n, nan),
        scores={key: np.asarray(values, dtype=float) for key, values in scores.items()},
        covariates=covariates,
    )


def test_a_spec_instrument_absent_from_a_clients_history_gives_nan_features():
    # The service passes only the instruments the client has scores for: PHQ-9 (lower is better,
    # so reflected) is in the spec but was never given.
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["phq9"]))
    got = client_features(history({"ors": [18, 24]}, {}), spec, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["ors_change_intake"], [nan, 6])
    for column in (c for c in spec.feature_columns() if c.startswith("phq9_")):
        assert got[column].dtype == np.float64 and np.isnan(got[column]).all(), column


def test_a_numeric_covariate_is_read_as_the_batch_path_reads_it():
    # As pd.to_numeric(errors="coerce") reads an episodes column: numbers and numeric text count,
    # blank or other text and None are missing.
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"],), numeric_covariates=("age",))
    for value, want in ((42, 42.0), ("42", 42.0), (" 7.5 ", 7.5), ("  ", nan), ("forty", nan), (None, nan)):
        got = client_features(history({"ors": [20, 21]}, {"age": value}), spec, ExpectedTrajectories({}))
        np.testing.assert_array_equal(got["age"], [want, want], err_msg=repr(value))


def test_a_missing_categorical_covariate_is_not_a_level_written_none():
    # A clinic's level may be the text "None" (no prior treatment); a missing value is not that level.
    spec = FeatureSpec(
        max_landmark=8,
        off_track_z=1.0,
        instruments=(REG["ors"],),
        categorical_covariates={"prior_treatment": ("None", "therapy")},
    )
    for value, want in ((None, nan), ("None", 0.0), ("therapy", 1.0), ("drugs", nan)):
        covariates = {"prior_treatment": value}
        got = client_features(history({"ors": [20]}, covariates), spec, ExpectedTrajectories({}))
        np.testing.assert_array_equal(got["prior_treatment"], [want], err_msg=repr(value))
