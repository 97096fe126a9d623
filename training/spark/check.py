"""Pass one: validate every bucket, and profile what the spec and the expected trajectories need.

Each bucket returns summary rows (``PROFILE_SCHEMA``): problems counted by
(file, column, rule), warnings, row counts, each episode column's kind and
levels, scores given per instrument, and the trajectory sums of its clients.
The driver merges them into one ``SparkCheck`` for the whole data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import Problem, ValidationResult, validate_contract
from dropout_risk.features.instruments import Instrument, InstrumentRegistry
from dropout_risk.features.spec import (
    EPISODE_NON_COVARIATES,
    FeatureSpec,
    categorical_levels,
    infer_spec,
    is_numeric_covariate,
    is_usable_covariate,
)
from dropout_risk.features.trajectories import ExpectedTrajectories, trajectory_sums
from dropout_risk.training.spark.buckets import BUCKET, BucketInputs
from dropout_risk.training.spark.session import long_lines
from dropout_risk.training.spark.trajectories import merged_trajectories

PROFILE_SCHEMA = (
    "kind string, bucket long, file string, col string, text string, k long, n long, "
    "mx double, my double, sxx double, sxy double, syy double"
)
_PROFILE_COLUMNS = [c.split()[0] for c in PROFILE_SCHEMA.split(", ")]
Row = dict[str, Any]


def _row(kind: str, bucket: int, **values: Any) -> Row:
    return {"kind": kind, "bucket": bucket, **values}


def _profile_frame(rows: list[Row]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_PROFILE_COLUMNS)
    for name in ("kind", "file", "col", "text"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    for name in ("bucket", "k", "n"):
        frame[name] = pd.to_numeric(frame[name]).astype("Int64")
    for name in ("mx", "my", "sxx", "sxy", "syy"):
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame


# --- one bucket (on the workers) ---------------------------------------------------------------


def check_bucket(
    inputs: BucketInputs,
    max_landmark: int,
    outcome: tuple[Instrument, ...],
    profile: bool,
    sessions_raw: pd.DataFrame,
    episodes_raw: pd.DataFrame | None,
) -> pd.DataFrame:
    """One bucket's problems (counted by rule), warnings and, when clean, its profile rows."""
    frame = sessions_raw if len(sessions_raw) or episodes_raw is None else episodes_raw
    bucket = int(frame[BUCKET].iloc[0])
    malformed = _malformed_rows(inputs, bucket, sessions_raw, episodes_raw)
    if malformed:
        return _profile_frame(malformed)
    sessions, episodes = inputs.frames(sessions_raw, episodes_raw)
    one_sided = _one_sided_rows(bucket, sessions, episodes)
    if one_sided:
        return _profile_frame(one_sided)
    result = validate_contract(sessions, episodes, inputs.registry)
    rows = _validation_rows(bucket, result)
    if result.ok:
        rows += _covariate_rows(bucket, result.sessions, result.episodes, profile)
        if profile:
            rows += _instrument_rows(bucket, result.sessions, inputs.registry)
            rows += _trajectory_rows(bucket, result.sessions, outcome, max_landmark)
    return _profile_frame(rows)


def _malformed_rows(
    inputs: BucketInputs, bucket: int, sessions_raw: pd.DataFrame, episodes_raw: pd.DataFrame | None
) -> list[Row]:
    """CSV lines with more fields than the header, per file: pandas refuses such a file."""
    return [
        _row(
            "problem",
            bucket,
            file=file,
            text="not a well-formed CSV file: a line has more fields than the header",
            n=count,
        )
        for file, raw, columns in (
            ("sessions", sessions_raw, inputs.session_columns),
            ("episodes", episodes_raw, inputs.episode_columns),
        )
        if raw is not None and columns is not None and (count := long_lines(raw, len(columns)))
    ]


def _one_sided_rows(bucket: int, sessions: pd.DataFrame, episodes: pd.DataFrame) -> list[Row]:
    """The clients of a bucket found in one file only (their other rules are checked once they are in both)."""
    if sessions.empty:
        text, file, n = "client has an episode but no sessions", "episodes", len(episodes)
    elif episodes.empty:
        text, file, n = "client has sessions but no row in episodes", "sessions", int(sessions["client_id"].nunique())
    else:
        return []
    return [_row("problem", bucket, file=file, col="client_id", text=text, n=n)]


def _validation_rows(bucket: int, result: ValidationResult) -> list[Row]:
    rows = [_row("warning", bucket, text=w) for w in result.warnings]
    counts: dict[tuple[str, str | None, str, bool], int] = {}
    for p in result.problems:
        key = (p.file, p.column, p.rule, p.row is not None)
        counts[key] = counts.get(key, 0) + 1
    rows += [
        _row("problem", bucket, file=f, col=c, text=r, n=n if per_row else None)
        for (f, c, r, per_row), n in counts.items()
    ]
    return rows


def _covariate_rows(bucket: int, sessions: pd.DataFrame, episodes: pd.DataFrame, profile: bool) -> list[Row]:
    """Row counts, each episode column's kind and, when profiling, a text column's levels."""
    rows = [
        _row("count", bucket, file="sessions", n=len(sessions)),
        _row("count", bucket, file="episodes", n=len(episodes)),
    ]
    for name in episodes.columns:
        column = episodes[name]
        kind = "unusable" if not is_usable_covariate(column) else "numeric" if is_numeric_covariate(column) else "text"
        rows.append(_row("covariate", bucket, col=name, text=kind, n=int(column.notna().sum())))
        if profile and kind == "text" and name not in EPISODE_NON_COVARIATES:
            rows += [_row("level", bucket, col=name, text=level) for level in categorical_levels(column)]
    return rows


def _instrument_rows(bucket: int, sessions: pd.DataFrame, registry: InstrumentRegistry) -> list[Row]:
    return [
        _row("instrument", bucket, col=instrument.key, n=int(sessions[instrument.key].notna().sum()))
        for instrument in registry.present_in(sessions.columns)
    ]


def _trajectory_rows(
    bucket: int, sessions: pd.DataFrame, outcome: Iterable[Instrument], max_landmark: int
) -> list[Row]:
    """This bucket's ``trajectory_sums``: per outcome instrument and session k, n, means and centred sums."""
    return [
        _row("trajectory", bucket, col=key, k=int(k), n=int(r.n), mx=r.mx, my=r.my, sxx=r.sxx, sxy=r.sxy, syy=r.syy)
        for key, sums in trajectory_sums(sessions, outcome, max_landmark).items()
        for k, r in sums.iterrows()
    ]


# --- the whole data (on the driver) ------------------------------------------------------------


@dataclass
class SparkCheck:
    """The first pass over the whole data: problems, and what the spec and the curves need."""

    problems: list[Problem]
    warnings: list[str]
    kinds: dict[str, str] = field(default_factory=dict)  # episode column -> numeric | text | unusable
    session_rows: int = 0
    clients: int = 0
    instruments_observed: dict[str, int] = field(default_factory=dict)  # column present -> scores given
    levels: dict[str, list[str]] = field(default_factory=dict)
    trajectory_sums: pd.DataFrame | None = None
    max_landmark: int = FeatureConfig().max_landmark

    @property
    def ok(self) -> bool:
        return not self.problems

    def infer_spec(self, registry: InstrumentRegistry, config: FeatureConfig) -> FeatureSpec:
        """``features.spec.infer_spec`` on a one-row proxy of the whole data: its rules, its result."""
        if self.trajectory_sums is None:
            raise ValueError("this check was run without a profile")
        # Levels are profiled for text columns only: a numeric code's levels are unknown here.
        declared = sorted(n for n in config.categorical_covariates if self.kinds.get(n) == "numeric")
        if declared:
            raise ValueError(
                f"features.categorical_covariates names numeric column(s) {', '.join(declared)}: "
                "the spark engine cannot treat numeric codes as categories yet; use --engine pandas"
            )
        sessions = pd.DataFrame({key: [1.0 if n else np.nan] for key, n in self.instruments_observed.items()})
        columns = {}
        for name, kind in self.kinds.items():
            if kind == "numeric":
                columns[name] = pd.Series([np.nan], dtype="float64")
            elif kind == "unusable":
                columns[name] = pd.Series([pd.NaT], dtype="datetime64[ns]")
            else:
                levels: list[str | None] = [*self.levels.get(name, [])]
                columns[name] = pd.Series(levels or [None], dtype="string")
        episodes = pd.concat(columns, axis=1) if columns else pd.DataFrame()
        return infer_spec(sessions, episodes, registry, config)

    def fit_trajectories(self, spec: FeatureSpec) -> ExpectedTrajectories:
        """``fit_expected_trajectories`` of the whole sessions file, from the buckets' merged sums."""
        if self.trajectory_sums is None or spec.max_landmark != self.max_landmark:
            raise ValueError("this check was run without a profile or for another max_landmark")
        return merged_trajectories(self.trajectory_sums, spec)


def merge_check(
    found: pd.DataFrame, inputs: BucketInputs, names: dict[str, str], max_landmark: int, session_rows: int
) -> SparkCheck:
    """Every bucket's rows (``found``) merged into one check of the whole data."""
    check = SparkCheck(
        problems=_row_free(found, names),
        warnings=sorted(set(found.loc[found["kind"] == "warning", "text"])),
        max_landmark=max_landmark,
        session_rows=session_rows,
    )
    if not check.ok:
        return check
    counts = found[found["kind"] == "count"].groupby("file")["n"].sum()
    check.clients = int(counts.get("episodes", 0))
    if inputs.episode_columns is not None:
        check.kinds = _merge_kinds(found, inputs.episode_columns)
    instruments = found[found["kind"] == "instrument"]
    if len(instruments):  # profiled
        observed = instruments.groupby("col")["n"].sum()
        check.instruments_observed = {
            i.key: int(observed.get(i.key, 0)) for i in inputs.registry.present_in(inputs.session_columns)
        }
        levels = found[found["kind"] == "level"]
        check.levels = {name: sorted(set(part["text"])) for name, part in levels.groupby("col")}
        check.trajectory_sums = found[found["kind"] == "trajectory"].reset_index(drop=True)
    return check


def _merge_kinds(found: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """File-wide kind per episode column (see buckets._apply_kinds): text if any bucket has given text."""
    covariates = found[found["kind"] == "covariate"]
    kinds = {}
    for name in columns:
        seen = covariates[covariates["col"] == name]
        if (seen["text"] == "unusable").any():
            kinds[name] = "unusable"
        elif (seen.loc[seen["n"] > 0, "text"] == "text").any() or not (seen["text"] == "numeric").any():
            kinds[name] = "text"
        else:
            kinds[name] = "numeric"
    return kinds


def _row_free(found: pd.DataFrame, names: dict[str, str]) -> list[Problem]:
    """Problems summed over the buckets: one per (file, column, rule), saying how many rows break it."""
    problems = found[found["kind"] == "problem"]
    out = set()
    for (file, column, rule), part in problems.groupby(["file", "col", "text"], dropna=False, sort=False):
        rows = part["n"].dropna()
        count = int(rows.sum())
        suffix = f" ({count:,} row{'' if count == 1 else 's'})" if len(rows) else ""
        out.add(Problem(names.get(file, file), None, None if pd.isna(column) else column, f"{rule}{suffix}"))
    sessions_name = names.get("sessions", "sessions")
    return sorted(out, key=lambda p: (p.file != sessions_name, p.column or "", p.rule))
