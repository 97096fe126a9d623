"""Data contract v1: every broken rule is found, located and described without its value."""

from __future__ import annotations

import pandas as pd
import pytest

from dropout_risk.features.contract import ContractError, Problem, require_valid, validate_contract
from dropout_risk.features.instruments import Instrument, default_registry
from tests.support.contract import text_sessions

REGISTRY = default_registry()


def _episodes() -> pd.DataFrame:
    return pd.DataFrame(
        {"client_id": ["A", "B"], "status": ["dropout", "completed"], "age": ["34", ""], "gender": ["F", "M"]}
    )


def _rules(result) -> set[tuple[str, int | None, str | None, str]]:
    return {(p.file, p.row, p.column, p.rule) for p in result.problems}


def test_clean_files_are_typed_and_summarised():
    result = validate_contract(text_sessions(), _episodes(), REGISTRY)
    assert result.ok, result.problems
    assert result.sessions["session_number"].dtype == "int64"
    assert str(result.sessions["session_date"].dtype) == "datetime64[ns]"
    assert result.sessions["ors"].isna().sum() == 1  # blank stays missing, never zero
    assert result.episodes["age"].isna().sum() == 1
    summary = result.summary(REGISTRY)
    assert summary == {
        "clients": 2,
        "sessions": 5,
        "instruments": ["ors", "srs"],
        "dropout": 1,
        "completed": 1,
        "ongoing": 0,
        "dropout_rate": 0.5,
    }


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        (1, "ors", "41", "must be within 0-40 (Outcome Rating Scale)"),
        (1, "ors", "-1", "must be within 0-40 (Outcome Rating Scale)"),
        (1, "ors", "abc", "must be a number"),
        (1, "srs", "inf", "must be a number"),
        (1, "session_number", "2.5", "must be a whole number"),
        (1, "session_date", "08/01/2024", "must be an ISO date (YYYY-MM-DD)"),
        (1, "session_date", "2024-02-30", "must be an ISO date (YYYY-MM-DD)"),
        (1, "missed_since_last", "-2", "must be >= 0"),
        (1, "client_id", "", "is required but blank"),
    ],
)
def test_cell_rules_name_row_column_and_rule(row, column, value, rule):
    result = validate_contract(text_sessions({(row, column): value}), _episodes(), REGISTRY)
    assert ("sessions", row + 1, column, rule) in _rules(result)
    assert all(value not in str(p) for p in result.problems if value not in ("", "inf"))


def test_cross_row_rules():
    sessions = text_sessions({(2, "session_number"): "4", (4, "session_date"): "2024-01-01"})
    sessions = pd.concat([sessions, sessions.iloc[[0]]], ignore_index=True)  # duplicate A/1 at row 6
    rules = _rules(validate_contract(sessions, _episodes(), REGISTRY))
    assert (
        "sessions",
        3,
        "session_number",
        "numbering gap: the previous session number for this client is missing",
    ) in rules
    assert ("sessions", 5, "session_date", "date is earlier than this client's previous session") in rules
    assert ("sessions", 6, "session_number", "duplicate session_number for this client") in rules


def test_numbering_must_start_at_one():
    sessions = text_sessions({(3, "session_number"): "2", (4, "session_number"): "3"})
    rules = _rules(validate_contract(sessions, _episodes(), REGISTRY))
    assert ("sessions", 4, "session_number", "numbering must start at 1 for each client") in rules


def test_episode_rules_and_orphans_both_ways():
    episodes = pd.DataFrame(
        {"client_id": ["A", "A", "C"], "status": ["dropout", "quit", "ongoing"], "age": ["200", "x", "30"]}
    )
    rules = _rules(validate_contract(text_sessions(), episodes, REGISTRY))
    assert ("episodes", 2, "status", "must be one of dropout, completed, ongoing") in rules
    assert ("episodes", 2, "client_id", "must be unique: this client has more than one episode row") in rules
    assert ("episodes", 1, "age", "must be within 0-120") in rules
    assert ("episodes", 2, "age", "must be a number") in rules
    assert ("episodes", 3, "client_id", "client has an episode but no sessions") in rules
    assert ("sessions", 4, "client_id", "client has sessions but no row in episodes") in rules


def test_missing_columns_and_empty_files():
    rules = _rules(
        validate_contract(
            text_sessions().drop(columns=["session_date"]), _episodes().drop(columns=["status"]), REGISTRY
        )
    )
    assert ("sessions", None, "session_date", "required column is missing") in rules
    assert ("episodes", None, "status", "required column is missing") in rules
    empty = validate_contract(text_sessions().iloc[:0], _episodes(), REGISTRY)
    assert ("sessions", None, None, "file has no data rows") in _rules(empty)


def test_no_instrument_is_a_problem_and_unknown_columns_warn():
    sessions = text_sessions().drop(columns=["ors", "srs"]).assign(bdi2="10")
    result = validate_contract(sessions, _episodes(), REGISTRY)
    assert any(p.rule.startswith("no instrument column found") for p in result.problems)
    assert any("bdi2" in w for w in result.warnings)


def test_user_declared_instrument_is_range_checked():
    registry = REGISTRY.with_extra(
        [
            Instrument(
                key="bdi2",
                name="BDI-II",
                min=0,
                max=63,
                higher_is_better=False,
                role="outcome",
                cutoff=14,
                reliable_change=8,
            )
        ]
    )
    sessions = text_sessions().assign(bdi2=["20", "70", "", "", "5"])
    result = validate_contract(sessions, _episodes(), registry)
    assert _rules(result) == {("sessions", 2, "bdi2", "must be within 0-63 (BDI-II)")}


def test_typed_parquet_like_input_is_accepted():
    typed = validate_contract(text_sessions(), _episodes(), REGISTRY).sessions
    again = validate_contract(typed, _episodes(), REGISTRY)
    assert again.ok
    pd.testing.assert_frame_equal(again.sessions, typed)


def test_require_valid_raises_with_every_problem_and_no_values():
    with pytest.raises(ContractError) as caught:
        require_valid(text_sessions({(0, "ors"): "77.7", (1, "srs"): "99.9"}), _episodes(), REGISTRY)
    message = str(caught.value)
    assert "2 data contract problem(s)" in message
    assert "77.7" not in message and "99.9" not in message
    assert len(caught.value.problems) == 2


def test_problem_text():
    assert str(Problem("s.csv", 3, "ors", "must be a number")) == "s.csv, row 3, column ors: must be a number"
    assert str(Problem("s.csv", None, None, "file has no data rows")) == "s.csv: file has no data rows"


DATE_RANGE_RULE = "must be a date from 1900-01-01 to 2100-12-31"


@pytest.mark.parametrize("value", ["9999-12-31", "1600-01-01", "1899-12-31", "2101-01-01"])
def test_dates_outside_the_documented_range_are_a_problem_without_the_value(value):
    """Beyond numpy's nanosecond range (1677-2262) this was a traceback that printed the date."""
    result = validate_contract(text_sessions({(1, "session_date"): value}), _episodes(), REGISTRY)
    assert ("sessions", 2, "session_date", DATE_RANGE_RULE) in _rules(result)
    assert all(value not in str(p) for p in result.problems)


def test_typed_dates_outside_the_range_are_a_problem_too():
    """A Parquet date column arrives typed: microsecond or date objects, beyond nanoseconds' range."""
    sessions = text_sessions()
    sessions["session_date"] = pd.to_datetime(sessions["session_date"]).astype("datetime64[us]")
    sessions.loc[3, "session_date"] = pd.Timestamp("9999-12-31")
    result = validate_contract(sessions, _episodes(), REGISTRY)
    assert ("sessions", 4, "session_date", DATE_RANGE_RULE) in _rules(result)
    edges = text_sessions({(0, "session_date"): "1900-01-01", (4, "session_date"): "2100-12-31"})
    assert validate_contract(edges, _episodes(), REGISTRY).ok


def test_ended_on_is_an_optional_date_of_ended_episodes_and_never_a_covariate():
    from dropout_risk.features.config import FeatureConfig
    from dropout_risk.features.spec import infer_spec

    episodes = _episodes().assign(ended_on=["2024-01-20", ""])
    result = require_valid(text_sessions(), episodes, REGISTRY)
    assert result.episodes["ended_on"].iloc[0] == pd.Timestamp("2024-01-20")
    assert pd.isna(result.episodes["ended_on"].iloc[1])
    spec = infer_spec(result.sessions, result.episodes, REGISTRY, FeatureConfig())
    assert "ended_on" not in (*spec.numeric_covariates, *spec.categorical_covariates)

    bad = _episodes().assign(status=["dropout", "ongoing"], ended_on=["20/01/2024", "2024-02-20"])
    assert _rules(validate_contract(text_sessions(), bad, REGISTRY)) == {
        ("episodes", 1, "ended_on", "must be an ISO date (YYYY-MM-DD)"),
        (
            "episodes",
            2,
            "ended_on",
            "must be blank for an ongoing episode (ended_on is the day an ended episode ended)",
        ),
    }


@pytest.mark.parametrize(
    ("statuses", "counts", "rate"),
    [
        (["dropout", "dropout"], (2, 0, 0), 1.0),
        (["completed", "ongoing"], (0, 1, 1), 0.0),
        (["ongoing"] * 2, (0, 0, 2), None),
    ],
)
def test_the_summary_counts_each_outcome_even_when_one_is_absent(statuses, counts, rate):
    episodes = pd.DataFrame({"client_id": ["A", "B"][: len(statuses)], "status": statuses})
    summary = validate_contract(text_sessions(), episodes, REGISTRY).summary(REGISTRY)
    assert (summary["dropout"], summary["completed"], summary["ongoing"]) == counts
    assert summary["dropout_rate"] == rate if rate is not None else summary["dropout_rate"] != summary["dropout_rate"]


def test_a_contract_error_lists_fifty_problems_one_a_line_then_how_many_more():
    problems = [Problem("sessions", row, "ors", "must be a number") for row in range(1, 54)]
    lines = str(ContractError(problems)).split("\n")
    assert lines[0] == "53 data contract problem(s):"
    assert lines[1:51] == [f"  sessions, row {row}, column ors: must be a number" for row in range(1, 51)]
    assert lines[51:] == ["  ... and 3 more"]
    assert str(ContractError(problems[:50])).split("\n")[-1] == "  sessions, row 50, column ors: must be a number"


def test_problems_are_listed_sessions_first_then_by_row_and_column():
    sessions = text_sessions({(1, "srs"): "x", (1, "ors"): "y", (0, "ors"): "z"}).assign(bdi2="1")
    episodes = pd.DataFrame({"client_id": ["A", "B"], "status": ["quit", "completed"]})
    problems = validate_contract(sessions, episodes, REGISTRY).problems
    assert [(p.file, p.row, p.column) for p in problems] == [
        ("sessions", 1, "ors"),
        ("sessions", 2, "ors"),
        ("sessions", 2, "srs"),
        ("episodes", 1, "status"),
    ]
    no_rows = validate_contract(text_sessions().iloc[:0], _episodes().iloc[:0], REGISTRY).problems
    assert [(p.file, p.row, p.column, p.rule) for p in no_rows] == [
        ("sessions", None, None, "file has no data rows"),
        ("episodes", None, None, "file has no data rows"),
    ]
