"""Data contract v1: what a clinic's sessions and episodes files must hold.

Validation runs in three passes so every problem is reported, each with its
row, column and rule, and none with the offending value (the data are health
records):

1. parse: text to numbers and dates, recording cells that do not parse;
2. pandera schemas on the parsed frames: required, ranges from the instrument
   registry, allowed statuses, unique clients;
3. rules across rows and files: duplicate sessions, numbering gaps, dates going
   back, clients with sessions but no episode and the reverse.

The rules a client's sessions obey, and their words, live in ``features.session_rules``
(shared with the API); here they are applied to whole files at once.

Rows are numbered from 1 at the first data row (the header is not a row), so
in a CSV file row N is line N + 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from dropout_risk.features.cells import blank_to_na, is_untyped_text, parse_dates, parse_numeric
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.session_rules import (
    DATE_GOES_BACK,
    DATE_OUT_OF_RANGE,
    DUPLICATE_NUMBER,
    NUMBERING_GAP,
    NUMBERING_STARTS_AT_ONE,
)
from dropout_risk.features.spec import EPISODE_NON_COVARIATES, SESSION_ID_COLUMNS, SESSION_OPTIONAL_COLUMNS

STATUSES = ("dropout", "completed", "ongoing")
EPISODE_REQUIRED_COLUMNS = ("client_id", "status")
ENDED_ON = "ended_on"  # optional: the day an ended episode ended (the service records it when one is closed)
ENDED_ON_ONGOING = "must be blank for an ongoing episode (ended_on is the day an ended episode ended)"
ISO_DATE = "must be an ISO date (YYYY-MM-DD)"
AGE_RANGE = (0, 120)


@dataclass(frozen=True, order=True)
class Problem:
    """One broken rule. ``row`` is 1-based (header excluded); None for file-level problems."""

    file: str
    row: int | None
    column: str | None
    rule: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.rule}"


@dataclass
class ValidationResult:
    """Typed frames plus every problem found; the frames are usable only when ``ok``."""

    sessions: pd.DataFrame
    episodes: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, registry: InstrumentRegistry) -> dict:
        status = self.episodes["status"].value_counts()
        ended = int(status.get("dropout", 0) + status.get("completed", 0))
        return {
            "clients": int(self.episodes["client_id"].nunique()),
            "sessions": len(self.sessions),
            "instruments": [
                i.key for i in registry.present_in(self.sessions.columns) if self.sessions[i.key].notna().any()
            ],
            "dropout": int(status.get("dropout", 0)),
            "completed": int(status.get("completed", 0)),
            "ongoing": int(status.get("ongoing", 0)),
            "dropout_rate": (status.get("dropout", 0) / ended) if ended else float("nan"),
        }


class ContractError(ValueError):
    """Raised by ``require_valid`` with every problem in the message (no values)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} data contract problem(s):\n{shown}{more}")


# --- pass 1: parse (the cells themselves: features.cells) -------------------------------


def _type_problems(file: str, column: str, bad: pd.Series, rule: str) -> list[Problem]:
    return [Problem(file, int(i) + 1, column, rule) for i in np.flatnonzero(bad.to_numpy())]


def _parse_sessions(raw: pd.DataFrame, registry: InstrumentRegistry) -> tuple[pd.DataFrame, list[Problem]]:
    out = pd.DataFrame(index=raw.index)
    problems: list[Problem] = []
    out["client_id"] = blank_to_na(raw["client_id"]).astype("string")
    number, bad = parse_numeric(raw["session_number"], integer=True)
    out["session_number"] = number
    problems += _type_problems("sessions", "session_number", bad, "must be a whole number")
    out["session_date"], bad, outside = parse_dates(raw["session_date"])
    problems += _type_problems("sessions", "session_date", bad, ISO_DATE)
    problems += _type_problems("sessions", "session_date", outside, DATE_OUT_OF_RANGE)
    if "missed_since_last" in raw:
        out["missed_since_last"], bad = parse_numeric(raw["missed_since_last"], integer=True)
        problems += _type_problems("sessions", "missed_since_last", bad, "must be a whole number")
    for instrument in registry.present_in(raw.columns):
        out[instrument.key], bad = parse_numeric(raw[instrument.key], integer=False)
        problems += _type_problems("sessions", instrument.key, bad, "must be a number")
    return out, problems


def _parse_episodes(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    out = raw.copy()
    problems: list[Problem] = []
    for column in raw.columns:
        if column == "age":
            out["age"], bad = parse_numeric(raw["age"], integer=False)
            problems += _type_problems("episodes", "age", bad, "must be a number")
        elif column == ENDED_ON:
            problems += _parse_ended_on(raw, out)
        elif column not in EPISODE_NON_COVARIATES and is_untyped_text(raw[column]):
            # Covariates: numeric when every given cell is a number, else text. Identifiers stay text.
            parsed = pd.to_numeric(blank_to_na(raw[column]), errors="coerce")
            given = blank_to_na(raw[column]).notna()
            out[column] = parsed if bool(parsed[given].notna().all()) and given.any() else blank_to_na(raw[column])
        else:
            out[column] = blank_to_na(raw[column])
    out["client_id"] = out["client_id"].astype("string")
    out["status"] = blank_to_na(raw["status"]).astype("string").str.lower()
    return out, problems


def _parse_ended_on(raw: pd.DataFrame, out: pd.DataFrame) -> list[Problem]:
    """``ended_on`` as a date (ISO or blank; an all-blank column can read as NaN floats); blank while ongoing."""
    column = raw[ENDED_ON]
    column = column if pd.api.types.is_datetime64_any_dtype(column) else column.astype(object).where(column.notna(), "")
    out[ENDED_ON], bad, outside = parse_dates(column)
    ongoing = (blank_to_na(raw["status"]).astype("string").str.lower() == "ongoing").fillna(False)
    given = [(bad, ISO_DATE), (outside, DATE_OUT_OF_RANGE), (ongoing & out[ENDED_ON].notna(), ENDED_ON_ONGOING)]
    return [p for mask, rule in given for p in _type_problems("episodes", ENDED_ON, mask, rule)]


# --- pass 2: pandera schemas ------------------------------------------------------------

_RULES = {
    "not_nullable": "is required but blank",
    "field_uniqueness": "must be unique: this client has more than one episode row",
}


def sessions_schema(registry: InstrumentRegistry) -> pa.DataFrameSchema:
    columns = {
        "client_id": pa.Column("string", nullable=False),
        "session_number": pa.Column(float, pa.Check.ge(1, error="must be >= 1"), nullable=False),
        "session_date": pa.Column("datetime64[ns]", nullable=False),
        "missed_since_last": pa.Column(float, pa.Check.ge(0, error="must be >= 0"), nullable=True, required=False),
    }
    for instrument in registry.values():
        columns[instrument.key] = pa.Column(
            float,
            pa.Check.in_range(instrument.min, instrument.max, error=instrument.range_rule),
            nullable=True,
            required=False,
        )
    return pa.DataFrameSchema(columns, strict=False)


def episodes_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "client_id": pa.Column("string", nullable=False, unique=True, report_duplicates="exclude_first"),
            "status": pa.Column(
                "string", pa.Check.isin(STATUSES, error=f"must be one of {', '.join(STATUSES)}"), nullable=False
            ),
            "age": pa.Column(
                float,
                pa.Check.in_range(*AGE_RANGE, error=f"must be within {AGE_RANGE[0]}-{AGE_RANGE[1]}"),
                nullable=True,
                required=False,
            ),
        },
        strict=False,
    )


def _schema_problems(file: str, schema: pa.DataFrameSchema, frame: pd.DataFrame) -> list[Problem]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        return [
            Problem(file, None if pd.isna(index) else int(index) + 1, column, _RULES.get(check, check))
            for column, check, index in zip(cases["column"], cases["check"], cases["index"], strict=True)
        ]
    return []


# --- pass 3: rules across rows and files --------------------------------------------------


def _session_order_problems(sessions: pd.DataFrame) -> list[Problem]:
    usable = sessions.dropna(subset=["client_id", "session_number"])
    ordered = usable.sort_values(["client_id", "session_number"], kind="stable")
    by_client = ordered.groupby("client_id", sort=False)
    problems: list[Problem] = []

    duplicated = ordered.duplicated(["client_id", "session_number"], keep="first")
    problems += [Problem("sessions", int(i) + 1, "session_number", DUPLICATE_NUMBER) for i in ordered.index[duplicated]]

    distinct = ordered[~duplicated]
    previous = distinct.groupby("client_id", sort=False)["session_number"].shift()
    first_wrong = previous.isna() & (distinct["session_number"] != 1)
    gap = previous.notna() & (distinct["session_number"] != previous + 1)
    problems += [
        Problem("sessions", int(i) + 1, "session_number", NUMBERING_STARTS_AT_ONE) for i in distinct.index[first_wrong]
    ]
    problems += [Problem("sessions", int(i) + 1, "session_number", NUMBERING_GAP) for i in distinct.index[gap]]

    previous_date = by_client["session_date"].shift()
    back = ordered["session_date"].notna() & previous_date.notna() & (ordered["session_date"] < previous_date)
    problems += [Problem("sessions", int(i) + 1, "session_date", DATE_GOES_BACK) for i in ordered.index[back]]
    return problems


def _cross_file_problems(sessions: pd.DataFrame, episodes: pd.DataFrame) -> list[Problem]:
    # Object arrays: isin on pandas' string dtype loops in Python (seconds at a million rows).
    session_clients = sessions["client_id"].dropna().astype(object)
    episode_clients = episodes["client_id"].dropna().astype(object)
    orphan_sessions = session_clients[~session_clients.isin(pd.unique(episode_clients.to_numpy()))]
    first_rows = orphan_sessions.index[~orphan_sessions.duplicated()]
    problems = [
        Problem("sessions", int(i) + 1, "client_id", "client has sessions but no row in episodes") for i in first_rows
    ]
    no_sessions = episode_clients[~episode_clients.isin(pd.unique(session_clients.to_numpy()))]
    problems += [
        Problem("episodes", int(i) + 1, "client_id", "client has an episode but no sessions") for i in no_sessions.index
    ]
    return problems


def file_problems(
    session_columns: Iterable[str],
    session_rows: int,
    episode_columns: Iterable[str] | None,
    episode_rows: int | None,
) -> list[Problem]:
    """What is checked before a row is read: required columns, then files without data rows.

    ``episode_columns`` None: no episodes file (the Spark engine scores sessions alone).
    """
    problems = _missing_columns("sessions", session_columns, SESSION_ID_COLUMNS)
    if episode_columns is not None:
        problems += _missing_columns("episodes", episode_columns, EPISODE_REQUIRED_COLUMNS)
    for file, rows in (("sessions", session_rows), ("episodes", episode_rows)):
        if rows == 0:
            problems.append(Problem(file, None, None, "file has no data rows"))
    return problems


def _data_rows(frame: pd.DataFrame) -> int:
    return 0 if frame.empty else len(frame)  # a frame without columns holds no data either


def _missing_columns(file: str, columns: Iterable[str], required: tuple[str, ...]) -> list[Problem]:
    present = set(columns)
    return [Problem(file, None, c, "required column is missing") for c in required if c not in present]


def validate_contract(sessions: pd.DataFrame, episodes: pd.DataFrame, registry: InstrumentRegistry) -> ValidationResult:
    """Check raw sessions and episodes frames against data contract v1.

    Accepts frames as read from CSV (all text) or Parquet (typed). Returns the
    typed frames, sorted by client and session, and every problem found.
    """
    problems = file_problems(sessions.columns, _data_rows(sessions), episodes.columns, _data_rows(episodes))
    if problems:
        return ValidationResult(sessions, episodes, sorted(set(problems), key=_order))

    sessions = sessions.reset_index(drop=True)
    episodes = episodes.reset_index(drop=True)
    warnings = []
    instruments = registry.present_in(sessions.columns)
    if not instruments:
        problems.append(
            Problem("sessions", None, None, f"no instrument column found (expected one of: {', '.join(registry)})")
        )
    known = {*SESSION_ID_COLUMNS, *SESSION_OPTIONAL_COLUMNS, *registry}
    unknown = [c for c in sessions.columns if c not in known]
    if unknown:
        warnings.append(
            f"sessions: columns ignored (not in the contract nor declared as instruments): "
            f"{', '.join(map(str, unknown))}"
        )

    typed_sessions, parse_problems = _parse_sessions(sessions, registry)
    typed_episodes, episode_parse_problems = _parse_episodes(episodes)
    problems += parse_problems + episode_parse_problems
    problems += _schema_problems("sessions", sessions_schema(registry), typed_sessions)
    problems += _schema_problems("episodes", episodes_schema(), typed_episodes)
    problems += _session_order_problems(typed_sessions)
    problems += _cross_file_problems(typed_sessions, typed_episodes)

    typed_sessions = typed_sessions.sort_values(["client_id", "session_number"], kind="stable")
    if "missed_since_last" not in typed_sessions:
        typed_sessions["missed_since_last"] = np.nan
    canonical = [*SESSION_ID_COLUMNS, *SESSION_OPTIONAL_COLUMNS, *(i.key for i in instruments)]
    typed_sessions = typed_sessions[canonical]
    if not _unique_cells(problems):
        typed_sessions["session_number"] = typed_sessions["session_number"].astype("int64")
    return ValidationResult(
        typed_sessions.reset_index(drop=True),
        typed_episodes.sort_values("client_id", kind="stable").reset_index(drop=True),
        _unique_cells(problems),
        warnings,
    )


def _order(problem: Problem) -> tuple:
    return (problem.file != "sessions", problem.row or 0, problem.column or "", problem.rule)


def _unique_cells(problems: list[Problem]) -> list[Problem]:
    """One problem per (file, row, column): a cell that failed to parse is not also 'blank'."""
    seen: set[tuple] = set()
    unique = []
    for problem in problems:  # parse problems come first, so they win
        key = (problem.file, problem.row, problem.column)
        if problem.row is not None and key in seen:
            continue
        seen.add(key)
        unique.append(problem)
    return sorted(unique, key=_order)


def require_valid(sessions: pd.DataFrame, episodes: pd.DataFrame, registry: InstrumentRegistry) -> ValidationResult:
    """``validate_contract`` that raises ``ContractError`` unless the data are clean."""
    result = validate_contract(sessions, episodes, registry)
    if not result.ok:
        raise ContractError(result.problems)
    return result
