"""A corpus of broken training files: each is refused with a clear message, exit 1, and nothing in MLflow.

Built from a small simulated cohort, one defect per case, run through
``dropout-risk train`` and ``dropout-risk validate`` (typer's CliRunner). The
message must name the file, the row (or line) and column where there is one,
and the rule; it must never print a client identifier or the offending value
(these are health records). Cases already in ``test_train_rejects.py``
(out-of-range SRS, every episode completed, too few clients, a missing
session_date column) are not repeated here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from dropout_risk.cli.main import app

runner = CliRunner()
CLIENT_ID = re.compile(r"C\d{5}")  # the simulator's identifiers: none may reach the terminal


@dataclass(frozen=True)
class Base:
    sessions: pd.DataFrame  # as text, exactly as a clinic's CSV holds it
    episodes: pd.DataFrame
    rows: list[int]  # 0-based sessions rows of one client with at least four sessions, in order


@pytest.fixture(scope="module")
def base(cohorts) -> Base:
    paths = cohorts.files(80, seed=5)
    sessions = pd.read_csv(paths["sessions"], dtype=str, keep_default_na=False)
    episodes = pd.read_csv(paths["episodes"], dtype=str, keep_default_na=False)
    counts = sessions.groupby("client_id", sort=False).size()
    client = counts[counts >= 4].index[0]
    return Base(sessions, episodes, sessions.index[sessions["client_id"] == client].tolist())


Frames = tuple[pd.DataFrame, pd.DataFrame]
Build = Callable[[Base, Path], tuple[Path, Path]]


def frames(change: Callable[[pd.DataFrame, pd.DataFrame, list[int]], Frames | None]) -> Build:
    """A case that edits copies of the text frames and writes them as sessions.csv and episodes.csv."""

    def build(base: Base, directory: Path) -> tuple[Path, Path]:
        sessions, episodes = base.sessions.copy(), base.episodes.copy()
        changed = change(sessions, episodes, base.rows)
        if changed is not None:
            sessions, episodes = changed
        return _write(directory, sessions, episodes)

    return build


def _write(directory: Path, sessions: pd.DataFrame, episodes: pd.DataFrame) -> tuple[Path, Path]:
    sessions.to_csv(directory / "sessions.csv", index=False, lineterminator="\n")
    episodes.to_csv(directory / "episodes.csv", index=False, lineterminator="\n")
    return directory / "sessions.csv", directory / "episodes.csv"


def raw_sessions(change: Callable[[bytes], bytes], name: str = "sessions.csv") -> Build:
    """A case that rewrites the bytes of the sessions file (encodings, empty files, broken CSV)."""

    def build(base: Base, directory: Path) -> tuple[Path, Path]:
        sessions, episodes = _write(directory, base.sessions, base.episodes)
        target = directory / name
        target.write_bytes(change(sessions.read_bytes()))
        return target, episodes

    return build


def parquet(change: Callable[[pd.DataFrame, list[int]], None]) -> Build:
    """A case in a typed Parquet sessions file (numbers as numbers, dates as dates) beside a CSV episodes file."""

    def build(base: Base, directory: Path) -> tuple[Path, Path]:
        sessions = base.sessions.copy()
        for column in ("session_number", "missed_since_last", "ors", "srs"):
            sessions[column] = pd.to_numeric(sessions[column])
        sessions["session_date"] = pd.to_datetime(sessions["session_date"])
        change(sessions, base.rows)
        sessions.to_parquet(directory / "sessions.parquet", index=False)
        base.episodes.to_csv(directory / "episodes.csv", index=False)
        return directory / "sessions.parquet", directory / "episodes.csv"

    return build


def _text_scores(sessions: pd.DataFrame, rows: list[int]) -> None:
    sessions["ors"] = sessions["ors"].astype(str)
    sessions.loc[rows[2], "ors"] = "high-23.7"


def _set(frame: pd.DataFrame, row: int, column: str, value: str) -> None:
    frame.loc[row, column] = value


def _line(data: bytes, number: int, change: Callable[[bytes], bytes]) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = change(lines[number - 1])
    return b"\n".join(lines)


def _drop_rows(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    return frame.drop(index=rows).reset_index(drop=True)


def _one_status(status: str):
    def change(_sessions, episodes, _rows):
        episodes["status"] = episodes["status"].where(episodes["status"] == "ongoing", status)

    return change


@dataclass(frozen=True)
class Case:
    name: str
    build: Build
    expected: str  # in the message, whitespace normalised: file, row or line, column, rule
    secret: str | None = None  # the offending value: never printed
    contract: bool = True  # False: the files meet the contract, only training refuses them


# Rows are 1-based data rows (row N is line N + 1 of a CSV). ``r[i]`` is the client's (i+1)th session.
CORPUS = [
    # -- missing columns
    Case(
        "episodes_without_status",
        frames(lambda s, e, r: (s, e.drop(columns=["status"]))),
        "episodes.csv, column status: required column is missing",
    ),
    Case(
        "sessions_without_client_id",
        frames(lambda s, e, r: (s.drop(columns=["client_id"]), e)),
        "sessions.csv, column client_id: required column is missing",
    ),
    Case(
        "no_instrument_column",
        frames(lambda s, e, r: (s.drop(columns=["ors", "srs"]), e)),
        "sessions.csv: no instrument column found",
    ),
    # -- wrong types
    Case(
        "session_number_text",
        frames(lambda s, e, r: _set(s, r[2], "session_number", "third-7731")),
        "row {r2}, column session_number: must be a whole number",
        secret="third-7731",
    ),
    Case(
        "session_number_fraction",
        frames(lambda s, e, r: _set(s, r[2], "session_number", "2.77")),
        "row {r2}, column session_number: must be a whole number",
        secret="2.77",
    ),
    Case(
        "date_not_iso",
        frames(lambda s, e, r: _set(s, r[1], "session_date", "13/03/2024")),
        "row {r1}, column session_date: must be an ISO date (YYYY-MM-DD)",
        secret="13/03/2024",
    ),
    Case(
        "date_impossible",
        frames(lambda s, e, r: _set(s, r[1], "session_date", "2024-02-31")),
        "row {r1}, column session_date: must be an ISO date (YYYY-MM-DD)",
        secret="2024-02-31",
    ),
    Case(
        "date_beyond_nanoseconds",  # numpy's nanosecond range ends in 2262: this was a traceback with the date
        frames(lambda s, e, r: _set(s, r[1], "session_date", "9999-12-31")),
        "row {r1}, column session_date: must be a date from 1900-01-01 to 2100-12-31",
        secret="9999-12-31",
    ),
    Case(
        "date_before_1900",
        frames(lambda s, e, r: _set(s, r[1], "session_date", "1899-12-31")),
        "row {r1}, column session_date: must be a date from 1900-01-01 to 2100-12-31",
        secret="1899-12-31",
    ),
    Case(
        "score_text",
        frames(lambda s, e, r: _set(s, r[3], "ors", "high-23.7")),
        "row {r3}, column ors: must be a number",
        secret="high-23.7",
    ),
    Case(
        "score_infinite", frames(lambda s, e, r: _set(s, r[3], "srs", "inf")), "row {r3}, column srs: must be a number"
    ),
    Case(
        "missed_fraction",
        frames(lambda s, e, r: _set(s, r[1], "missed_since_last", "1.37")),
        "row {r1}, column missed_since_last: must be a whole number",
        secret="1.37",
    ),
    Case(
        "age_text",
        frames(lambda s, e, r: _set(e, 2, "age", "thirty-one")),
        "episodes.csv, row 3, column age: must be a number",
        secret="thirty-one",
    ),
    # -- out of range (SRS above its maximum is in test_train_rejects.py)
    Case(
        "score_below_range",
        frames(lambda s, e, r: _set(s, r[2], "ors", "-3.37")),
        "row {r2}, column ors: must be within 0-40 (Outcome Rating Scale)",
        secret="-3.37",
    ),
    Case(
        "score_above_range",
        frames(lambda s, e, r: _set(s, r[2], "ors", "40.77")),
        "row {r2}, column ors: must be within 0-40 (Outcome Rating Scale)",
        secret="40.77",
    ),
    Case(
        "session_number_zero",
        frames(lambda s, e, r: _set(s, r[0], "session_number", "0")),
        "row {r0}, column session_number: must be >= 1",
    ),
    Case(
        "missed_negative",
        frames(lambda s, e, r: _set(s, r[1], "missed_since_last", "-13")),
        "row {r1}, column missed_since_last: must be >= 0",
        secret="-13",
    ),
    Case(
        "age_out_of_range",
        frames(lambda s, e, r: _set(e, 4, "age", "131.9")),
        "episodes.csv, row 5, column age: must be within 0-120",
        secret="131.9",
    ),
    # -- rules across rows and files
    Case(
        "duplicate_session_number",
        frames(lambda s, e, r: _set(s, r[2], "session_number", "2")),
        "row {r2}, column session_number: duplicate session_number for this client",
    ),
    Case(
        "numbering_gap",
        frames(lambda s, e, r: (_drop_rows(s, [r[1]]), e)),
        "row {r1}, column session_number: numbering gap: the previous session number for this client is missing",
    ),
    Case(
        "date_going_back",
        frames(lambda s, e, r: _set(s, r[2], "session_date", "2001-01-01")),
        "row {r2}, column session_date: date is earlier than this client's previous session",
        secret="2001-01-01",
    ),
    Case(
        "blank_client_id",
        frames(lambda s, e, r: _set(s, r[1], "client_id", "")),
        "row {r1}, column client_id: is required but blank",
    ),
    Case(
        "unknown_status",
        frames(lambda s, e, r: _set(e, 1, "status", "withdrawn-7731")),
        "episodes.csv, row 2, column status: must be one of dropout, completed, ongoing",
        secret="withdrawn-7731",
    ),
    Case(
        "duplicate_episode",
        frames(lambda s, e, r: (s, pd.concat([e, e.iloc[[3]]], ignore_index=True))),
        "episodes.csv, row {episodes_end}, column client_id: must be unique",
    ),
    Case(
        "sessions_without_episode",
        frames(lambda s, e, r: (s, e[e["client_id"] != s.loc[r[0], "client_id"]])),
        "row {r0}, column client_id: client has sessions but no row in episodes",
    ),
    Case(
        "episode_without_sessions",
        frames(lambda s, e, r: (_drop_rows(s, r), e)),
        "column client_id: client has an episode but no sessions",
    ),
    # -- files that are not tables
    Case("empty_file", raw_sessions(lambda data: b""), "sessions.csv: file is empty (expected a header row)"),
    Case("header_only", raw_sessions(lambda data: data.split(b"\n")[0] + b"\n"), "sessions.csv: file has no data rows"),
    Case(
        "not_utf8",
        raw_sessions(lambda data: _line(data, 5, lambda line: line.replace(b"C", b"\xff\xfe", 1))),
        "sessions.csv: line 5 is not valid UTF-8 text",
    ),
    Case(
        "latin1_text",
        raw_sessions(lambda data: _line(data, 9, lambda line: line.replace(b"C", b"\xc9", 1))),
        "sessions.csv: line 9 is not valid UTF-8 text",
    ),
    Case(
        "very_long_line",
        raw_sessions(lambda data: _line(data, 4, lambda line: line + b",7" * 200_000)),
        "sessions.csv: not a well-formed CSV file",
    ),
    Case(
        "very_long_cell",
        raw_sessions(lambda data: _line(data, 4, lambda line: line.rsplit(b",", 1)[0] + b"," + b"9" * 1_000_000)),
        "sessions.csv, row 3, column srs: must be a number",
    ),
    Case(
        "unterminated_quote",
        raw_sessions(lambda data: _line(data, 6, lambda line: b'"' + line)),
        "sessions.csv: not a well-formed CSV file",
    ),
    Case(
        "unsupported_extension",
        raw_sessions(lambda data: data, name="sessions.txt"),
        "sessions.txt: unsupported file type '.txt'",
    ),
    Case(
        "corrupt_parquet",
        raw_sessions(lambda data: b"PAR1" + data[:500], name="sessions.parquet"),
        "sessions.parquet: not a readable Parquet file",
    ),
    # -- typed (Parquet) columns of the wrong type
    Case(
        "parquet_text_scores",
        parquet(_text_scores),
        "sessions.parquet, row {r2}, column ors: must be a number",
        secret="high-23.7",
    ),
    Case(
        "parquet_boolean_scores",
        parquet(lambda s, r: s.__setitem__("srs", s["srs"] > 30)),
        "sessions.parquet, row 1, column srs: must be a number",
    ),
    # -- valid files that cannot train a model (every episode completed is in test_train_rejects.py)
    Case(
        "every_episode_dropout",
        frames(lambda s, e, r: _one_status("dropout")(s, e, r)),
        "every ended episode has the same status (dropout)",
        contract=False,
    ),
    Case(
        "every_episode_ongoing",
        frames(lambda s, e, r: e.__setitem__("status", "ongoing")),
        "no ended episodes: a model needs both dropout and completed episodes",
        contract=False,
    ),
]


def _expected(case: Case, base: Base) -> str:
    rows = {f"r{i}": row + 1 for i, row in enumerate(base.rows)}
    return case.expected.format(**rows, episodes_end=len(base.episodes) + 1)


def _config(directory: Path, store) -> Path:
    config = directory / "config.toml"
    config.write_text(f'[training]\nfolds = 3\nartifact_location = "{store.artifacts}"\nexperiment = "bad-data"\n')
    return config


def _check_message(result, expected: str, case: Case, base: Base, sessions: Path) -> None:
    output = result.output
    assert result.exit_code == 1, output
    assert expected in " ".join(output.split()), output
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}"  # exit 1 by design, no crash
    assert "Traceback" not in output
    assert not CLIENT_ID.search(output), "a client identifier reached the terminal"
    if case.secret:
        assert case.secret not in output, "the offending value reached the terminal"
    # Nor any score of the client whose rows were broken (a message names cells, it never echoes them).
    scores = base.sessions.loc[base.rows, ["ors", "srs"]].to_numpy().ravel()
    assert not [v for v in scores if "." in v and v in output]
    assert len(output) < 50_000, "the message echoes the file"


def _nothing_in_mlflow(store) -> None:
    client = MlflowClient()
    assert client.search_registered_models() == []
    experiments = client.search_experiments()
    assert {e.name for e in experiments} <= {"Default"}, "an experiment was created"
    assert client.search_runs([e.experiment_id for e in experiments]) == []
    assert not store.artifacts.exists() or not any(store.artifacts.iterdir())


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_train_refuses_and_registers_nothing(case, base, mlflow_store, tmp_path):
    sessions, episodes = case.build(base, tmp_path)
    report = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "train",
            "--sessions",
            str(sessions),
            "--episodes",
            str(episodes),
            "--config",
            str(_config(tmp_path, mlflow_store)),
            "--report",
            str(report),
            "--promote",
        ],
    )
    _check_message(result, _expected(case, base), case, base, sessions)
    assert not report.exists()
    _nothing_in_mlflow(mlflow_store)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_validate_gives_the_same_verdict(case, base, mlflow_store, tmp_path):
    sessions, episodes = case.build(base, tmp_path)
    result = runner.invoke(app, ["validate", "--sessions", str(sessions), "--episodes", str(episodes)])
    if case.contract:
        _check_message(result, _expected(case, base), case, base, sessions)
    else:  # the files meet the contract: only training needs both outcomes
        assert result.exit_code == 0, result.output
        assert "valid" in result.output
        assert not CLIENT_ID.search(result.output)
    _nothing_in_mlflow(mlflow_store)
