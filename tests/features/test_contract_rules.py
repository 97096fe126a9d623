"""Data contract v1, rule by rule: each rule's exact words and the cell it names, what is accepted as it is
given, and the typed frames a clean pair gives back (the cases ``test_contract.py`` does not reach)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import ContractError, Problem, validate_contract
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import infer_spec
from tests.support.contract import text_sessions

REGISTRY = default_registry()
BLANK = "is required but blank"
WHOLE = "must be a whole number"
ISO = "must be an ISO date (YYYY-MM-DD)"


def _episodes(**columns: list) -> pd.DataFrame:
    return pd.DataFrame({"client_id": ["A", "B"], "status": ["dropout", "completed"], **columns})


def _problems(sessions: pd.DataFrame, episodes: pd.DataFrame) -> list[tuple[str, int | None, str | None, str]]:
    return [(p.file, p.row, p.column, p.rule) for p in validate_contract(sessions, episodes, REGISTRY).problems]


@pytest.mark.parametrize(
    ("file", "row", "column"),
    [
        ("sessions", 5, "session_number"),
        ("sessions", 2, "session_date"),
        ("episodes", 1, "status"),
    ],
)
def test_a_blank_required_cell_is_reported_as_blank_and_nothing_else(file, row, column):
    sessions, episodes = text_sessions(), _episodes()
    (sessions if file == "sessions" else episodes).loc[row - 1, column] = ""
    assert _problems(sessions, episodes) == [(file, row, column, BLANK)]


def test_a_blank_client_id_in_episodes_is_reported_and_its_clients_sessions_are_orphans():
    problems = _problems(text_sessions(), _episodes().assign(client_id=["A", " "]))
    assert problems == [
        ("sessions", 4, "client_id", "client has sessions but no row in episodes"),
        ("episodes", 2, "client_id", BLANK),
    ]


@pytest.mark.parametrize("number", ["0", "-1"])
def test_a_session_number_below_one_breaks_the_at_least_one_rule(number):
    sessions = text_sessions({(3, "session_number"): number, (4, "session_number"): "1"})
    in_its_row = [p for p in _problems(sessions, _episodes()) if p[1] == 4]
    assert in_its_row == [("sessions", 4, "session_number", "must be >= 1")]


def test_missed_since_last_must_be_a_whole_number():
    assert _problems(text_sessions({(1, "missed_since_last"): "1.5"}), _episodes()) == [
        ("sessions", 2, "missed_since_last", WHOLE)
    ]


def test_an_age_may_have_a_fraction():
    result = validate_contract(text_sessions(), _episodes(age=["34.5", "60"]), REGISTRY)
    assert result.ok, result.problems
    assert result.episodes["age"].tolist() == [34.5, 60.0]


@pytest.mark.parametrize("order", [["ended_on", "age"], ["age", "ended_on"]])
def test_every_episode_cell_that_does_not_parse_is_reported_whatever_the_column_order(order):
    episodes = _episodes(age=["x", "40"], ended_on=["2024-01-20", "20/02/2024"])
    episodes = episodes[["client_id", "status", *order]]
    assert _problems(text_sessions(), episodes) == [
        ("episodes", 1, "age", "must be a number"),
        ("episodes", 2, "ended_on", ISO),
    ]


def test_object_covariates_are_numbers_when_every_given_cell_is_one_else_text():
    """Object columns (text as pandas < 3 reads it, or a frame built in code): each covariate typed as a whole,
    and client ids, numbers or not, kept as the text they are."""
    sessions = text_sessions().assign(client_id=["007", "007", "007", "010", "010"])
    episodes = pd.DataFrame(
        {
            "client_id": ["007", "010"],
            "status": ["dropout", "completed"],
            "years": ["12", " "],
            "site": ["3", "north"],
        },
        dtype=object,
    )
    result = validate_contract(sessions, episodes, REGISTRY)
    assert result.ok, result.problems
    assert result.episodes["client_id"].tolist() == ["007", "010"]
    assert pd.api.types.is_numeric_dtype(result.episodes["years"])
    np.testing.assert_array_equal(result.episodes["years"].astype("float64"), [12.0, np.nan])
    assert result.episodes["site"].tolist() == ["3", "north"]
    spec = infer_spec(result.sessions, result.episodes, REGISTRY, FeatureConfig())
    assert spec.numeric_covariates == ("years",)
    assert spec.categorical_covariates == {"site": ("3", "north")}


@pytest.mark.parametrize("dtype", ["str", object], ids=["pandas 3 text", "object text"])
def test_a_numeric_covariate_read_as_text_is_a_number_and_identifiers_stay_text(dtype):
    """A CSV file's cells arrive as text (pandas 3: the ``str`` dtype, as Parquet strings do): a covariate
    whose every given cell is a number is a quantity, as in a typed file; clinic and therapist ids stay text."""
    episodes = _episodes(years=["12", ""]).assign(clinic_id=["101", "102"], therapist_id=["7", "8"]).astype(dtype)
    result = validate_contract(text_sessions(), episodes, REGISTRY)
    assert result.ok, result.problems
    assert pd.api.types.is_numeric_dtype(result.episodes["years"])
    np.testing.assert_array_equal(result.episodes["years"].astype("float64"), [12.0, np.nan])
    assert result.episodes["clinic_id"].tolist() == ["101", "102"]
    assert result.episodes["therapist_id"].tolist() == ["7", "8"]
    spec = infer_spec(result.sessions, result.episodes, REGISTRY, FeatureConfig())
    assert spec.numeric_covariates == ("years",) and spec.categorical_covariates == {}


def test_typed_integer_client_ids_are_read_as_text_in_both_files():
    """A Parquet file may store client ids as integers."""
    sessions = text_sessions().assign(client_id=[7, 7, 7, 8, 8])
    result = validate_contract(sessions, _episodes().assign(client_id=[7, 8]), REGISTRY)
    assert result.ok, result.problems
    assert list(result.episodes.columns) == ["client_id", "status"]
    assert result.episodes["client_id"].tolist() == ["7", "8"]
    assert result.sessions["client_id"].tolist() == ["7", "7", "7", "8", "8"]


def test_statuses_are_read_whatever_their_case():
    result = validate_contract(text_sessions(), _episodes().assign(status=["Dropout", "COMPLETED"]), REGISTRY)
    assert result.ok, result.problems
    assert list(result.episodes.columns) == ["client_id", "status"]
    assert result.episodes["status"].tolist() == ["dropout", "completed"]


def test_ended_on_cells_read_as_missing_are_blank_not_wrong():
    """A CSV read gives a blank cell as NaN, and a column with no date at all as NaN floats."""
    some = validate_contract(text_sessions(), _episodes(ended_on=["2024-01-20", np.nan]), REGISTRY)
    assert some.ok, some.problems
    assert some.episodes["ended_on"].tolist()[0] == pd.Timestamp("2024-01-20")
    assert pd.isna(some.episodes["ended_on"].iloc[1])
    none = validate_contract(text_sessions(), _episodes(ended_on=[np.nan, np.nan]), REGISTRY)
    assert none.ok, none.problems
    assert none.episodes["ended_on"].isna().all()


def test_a_typed_ended_on_is_kept_as_given_like_a_typed_session_date():
    """A Parquet timestamp column: the contract keeps its time of day, as it does a typed session_date's."""
    ended = pd.to_datetime(pd.Series(["2024-01-20 17:30", None]))
    result = validate_contract(text_sessions(), _episodes(ended_on=ended), REGISTRY)
    assert result.ok, result.problems
    assert result.episodes["ended_on"].iloc[0] == pd.Timestamp("2024-01-20 17:30")


def test_an_ended_on_beside_a_blank_status_is_not_judged_against_a_status():
    episodes = _episodes(ended_on=["2024-01-20", "2024-02-20"]).assign(status=["dropout", ""])
    assert _problems(text_sessions(), episodes) == [("episodes", 2, "status", BLANK)]


def test_only_the_second_and_later_episode_rows_of_a_client_are_flagged():
    episodes = pd.DataFrame({"client_id": ["A", "B", "A"], "status": ["dropout", "completed", "dropout"]})
    assert _problems(text_sessions(), episodes) == [
        ("episodes", 3, "client_id", "must be unique: this client has more than one episode row")
    ]


def test_a_repeated_session_number_is_a_duplicate_whatever_else_the_row_holds():
    sessions = text_sessions({(2, "session_number"): "2", (2, "ors"): "25"})
    assert _problems(sessions, _episodes()) == [
        ("sessions", 3, "session_number", "duplicate session_number for this client")
    ]


def test_two_sessions_on_one_day_are_in_order():
    sessions = text_sessions({(1, "session_date"): "2024-01-01", (2, "session_date"): "2024-01-01"})
    assert validate_contract(sessions, _episodes(), REGISTRY).ok


def test_a_file_without_columns_has_no_data_rows_whatever_its_length():
    problems = _problems(pd.DataFrame(index=range(3)), _episodes())
    assert problems == [
        ("sessions", None, None, "file has no data rows"),
        ("sessions", None, "client_id", "required column is missing"),
        ("sessions", None, "session_date", "required column is missing"),
        ("sessions", None, "session_number", "required column is missing"),
    ]


def test_files_refused_before_any_row_is_read_come_back_as_given():
    sessions, episodes = text_sessions().drop(columns=["session_date"]), _episodes()
    result = validate_contract(sessions, episodes, REGISTRY)
    assert not result.ok
    assert result.sessions is sessions and result.episodes is episodes


def test_a_clean_pair_comes_back_in_the_canonical_columns_and_order_without_warnings():
    """Any index (a slice of a bigger frame) and any row order: the same typed frames, renumbered from 0."""
    order = [4, 2, 0, 3, 1]
    sessions = text_sessions().iloc[order].set_axis([10, 11, 12, 13, 14])
    episodes = _episodes(gender=["F", "M"]).iloc[[1, 0]].set_axis([7, 9])
    result = validate_contract(sessions, episodes, REGISTRY)
    assert result.ok, result.problems
    assert result.warnings == []
    assert list(result.sessions.columns) == [
        "client_id",
        "session_number",
        "session_date",
        "missed_since_last",
        "ors",
        "srs",
    ]
    assert list(result.sessions.index) == [0, 1, 2, 3, 4]
    assert result.sessions["client_id"].tolist() == ["A", "A", "A", "B", "B"]
    assert result.sessions["session_number"].tolist() == [1, 2, 3, 1, 2]
    np.testing.assert_array_equal(result.sessions["missed_since_last"], [0.0, 1.0, np.nan, 0.0, 0.0])
    assert list(result.episodes.columns) == ["client_id", "status", "gender"]
    assert list(result.episodes.index) == [0, 1]
    assert result.episodes["client_id"].tolist() == ["A", "B"]


def test_no_instrument_column_names_every_column_expected_and_unknown_columns_are_named():
    sessions = text_sessions().drop(columns=["ors", "srs"]).assign(bdi2="10", notes="x")
    result = validate_contract(sessions, _episodes(), REGISTRY)
    expected = "ors, srs, phq9, gad7, oq45, core10, wai_sr, hamd17, hama"
    assert [(p.file, p.row, p.column, p.rule) for p in result.problems] == [
        ("sessions", None, None, f"no instrument column found (expected one of: {expected})")
    ]
    assert result.warnings == [
        "sessions: columns ignored (not in the contract nor declared as instruments): bdi2, notes"
    ]


def test_problems_are_ordered_by_row_before_column_and_by_column_before_rule():
    sessions = text_sessions({(0, "srs"): "x", (1, "ors"): "41", (1, "srs"): "y"})
    assert _problems(sessions, _episodes()) == [
        ("sessions", 1, "srs", "must be a number"),
        ("sessions", 2, "ors", "must be within 0-40 (Outcome Rating Scale)"),
        ("sessions", 2, "srs", "must be a number"),
    ]


def test_a_cell_that_does_not_parse_is_reported_once_and_later_problems_still_are():
    sessions = text_sessions({(1, "session_number"): "two", (4, "ors"): "x"})
    assert _problems(sessions, _episodes()) == [
        ("sessions", 2, "session_number", WHOLE),
        ("sessions", 3, "session_number", "numbering gap: the previous session number for this client is missing"),
        ("sessions", 5, "ors", "must be a number"),
    ]


def test_a_contract_error_of_fifty_one_problems_shows_fifty_and_one_more():
    problems = [Problem("sessions", row, "ors", "must be a number") for row in range(1, 52)]
    lines = str(ContractError(problems)).split("\n")
    assert lines[0] == "51 data contract problem(s):"
    assert lines[50:] == ["  sessions, row 50, column ors: must be a number", "  ... and 1 more"]
