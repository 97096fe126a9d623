"""Population scale on Apache Spark: the same contract, features and model, distributed.

Nothing here re-implements the project's logic. Every client's rows are handed,
as pandas frames, to the functions the pandas engine calls:
``features.contract.validate_contract`` (typing and the contract's rules),
``features.landmarks.build_features`` and ``DropoutRiskModel.score_history``.
Spark only moves the rows, via ``groupBy(...).cogroup(...).applyInPandas``.

Groups are client *buckets*, not single clients: the key is a hash of the
(whitespace-stripped) ``client_id``, so every row of a client, in both files,
lands in the same group, and a group holds a few thousand clients. All the
features are per client, so a bucket gives exactly what the whole file gives;
one pandas call per client would cost ~30 ms of fixed overhead each
(validation, then features), hours for a national cohort.

Two things are global and are computed in a first pass (``check_spark``), one
summary row set per bucket, merged on the driver:

- validation: every bucket runs the full contract; problems are counted by
  (file, column, rule) and reported *without row numbers* (a bucket's rows are
  not the file's; run ``dropout-risk validate`` on a file that fits in memory to
  locate them). Values and client ids are never reported.
- for ``features``: the spec (instruments with data, covariate kinds and
  levels) is inferred with ``features.spec.infer_spec`` on a tiny proxy of the
  whole data, and the expected-trajectory curves are fitted from per-bucket
  centred sums merged exactly as a parallel variance (Chan et al.); the final
  arithmetic mirrors ``features.trajectories`` (tests compare both to 1e-12).

The second pass builds features (or scores) per bucket and Spark writes
Parquet. Inputs: Parquet (typed) or CSV (read as text, as the pandas engine
does). Results equal the pandas engine's to 1e-9 (tests/training/test_spark_engine.py).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import (
    EPISODE_REQUIRED_COLUMNS,
    SESSION_ID_COLUMNS,
    ContractError,
    Problem,
    ValidationResult,
    validate_contract,
)
from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry
from dropout_risk.features.landmarks import OPTIONAL_EPISODE_IDS, build_features
from dropout_risk.features.spec import (
    EPISODE_NON_COVARIATES,
    FeatureSpec,
    categorical_levels,
    infer_spec,
    is_numeric_covariate,
    is_usable_covariate,
)
from dropout_risk.features.trajectories import ExpectedTrajectories, curve_from_sums
from dropout_risk.training.data import CSV_SUFFIXES, PARQUET_SUFFIXES, DataFileError

if TYPE_CHECKING:  # pyspark is an optional extra: imported lazily, see _pyspark()
    from pyspark.sql import DataFrame, SparkSession

    from dropout_risk.models.packaged import DropoutRiskModel

INSTALL_HINT = "install the spark extra: pip install '.[spark]' (and Java 17)"
DEFAULT_MASTER = "local[*]"
BUCKET = "__dropout_risk_bucket__"
MALFORMED = "__dropout_risk_malformed_line__"  # Spark's corrupt-record column for CSV input
ROWS_PER_BUCKET = 50_000  # session rows per pandas call: ~30 MB of frames, fixed overhead well amortised
BUCKETS_PER_PARTITION = 4  # several buckets per shuffle partition keep the hash spread even
# pyspark 4 warns on every pandas call that pandas 3 is "not fully supported"; what we use (str dtype,
# datetime64 units, Categorical at the boundary) is converted explicitly and tested.
_PANDAS3_WARNING = "PySpark does not yet fully support pandas"

warnings.filterwarnings("ignore", message=_PANDAS3_WARNING, category=FutureWarning)
# pyspark's own Arrow-to-pandas code passes astype(copy=False), which pandas 3 deprecates.
warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


class SparkUnavailableError(RuntimeError):
    """pyspark is not installed (it is the optional ``spark`` extra)."""


def _pyspark():
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise SparkUnavailableError(f"the Spark engine needs pyspark: {INSTALL_HINT}") from None
    return pyspark


# --- the session ------------------------------------------------------------------------------


def local_cores(master: str) -> int | None:
    """Cores of a ``local``, ``local[N]``, ``local[*]`` or ``local[N,F]`` master; None for a cluster."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if not match:
        return None
    cores = match.group(1)
    return 1 if cores is None else (os.cpu_count() or 1) if cores == "*" else int(cores)


def spark_session(
    master: str = DEFAULT_MASTER, app_name: str = "dropout-risk", config: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession for this project: Arrow on, UI off, UTC, quiet logs.

    On a local master the Python workers run this interpreter (so they see this
    environment's pandas and this package) and shuffles use 2 partitions per
    core, not Spark's 200. On a cluster every executor needs the same Python
    environment with this package installed; ``config`` passes any other
    Spark setting (``spark.executor.memory``, ``spark.archives``, ...).
    Returns the active session if there is one (Spark allows one per process).
    """
    pyspark = _pyspark()
    cores = local_cores(master)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        # The workers import pandera, which imports pyspark.pandas, which warns about pandas 3.
        "spark.executorEnv.PYTHONWARNINGS": f"ignore:{_PANDAS3_WARNING}:FutureWarning",
    }
    if cores is not None:
        # Workers are started with $PYSPARK_PYTHON, else "python3" from PATH: not this venv.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings["spark.sql.shuffle.partitions"] = str(2 * cores)
        settings["spark.default.parallelism"] = str(cores)
    settings.update(config or {})
    builder = pyspark.sql.SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a wrong Java, an unreachable master: PySparkRuntimeError and friends
        raise SparkUnavailableError(
            f"cannot start Spark on {master} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); the Spark engine needs Java 17"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def spark_for_job(master: str = DEFAULT_MASTER) -> Iterator[SparkSession]:
    """The active session if there is one (left running), else a new one on ``master``, stopped afterwards."""
    active = _pyspark().sql.SparkSession.getActiveSession()
    spark = active or spark_session(master)
    try:
        yield spark
    finally:
        if active is None:
            spark.stop()


# --- reading files ----------------------------------------------------------------------------


def _has_scheme(path: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


def read_table_spark(spark: SparkSession, path: str | Path) -> DataFrame:
    """A file as ``training.data.read_table`` reads it, as a Spark DataFrame.

    Parquet (a file or a directory of parts) keeps its types. CSV is read as
    pandas reads it here: every cell text, blanks missing, RFC 4180 quoting, a
    short line padded with blanks; a line with more fields than the header is
    reported by the first pass (Spark's own parse errors would print the line).
    A CSV field may not span lines here (that would make the file
    unsplittable); use Parquet at scale. Local paths and any URI Spark can
    read (``hdfs://``, ``s3a://``, ...) work.
    """
    text = str(path)
    suffix = Path(text.rstrip("/")).suffix.lower()
    if not _has_scheme(text) and not Path(text).exists():
        raise DataFileError(f"{text}: file not found")
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataFileError(f"{text}: unsupported file type {suffix!r} (use .csv, .parquet or .pq)")
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = spark.read.parquet(text)
            return frame.toDF(*[c.strip() for c in frame.columns])
        options = {"header": True, "escape": '"', "encoding": "UTF-8"}
        header = spark.read.csv(text, inferSchema=False, **options).columns
        if not header:
            raise DataFileError(f"{text}: file is empty (expected a header row)")
        types = _pyspark().sql.types
        names = [c.lstrip("\ufeff").strip() for c in header]
        # Positional: the header's names are replaced by these (stripped, as read_table strips them).
        schema = types.StructType([types.StructField(n, types.StringType()) for n in [*names, MALFORMED]])
        return spark.read.csv(
            text, schema=schema, mode="PERMISSIVE", columnNameOfCorruptRecord=MALFORMED, enforceSchema=True, **options
        )
    except DataFileError:
        raise
    except Exception as exc:  # Spark's AnalysisException names the path, never cell content
        raise DataFileError(f"{text}: not readable by Spark ({type(exc).__name__})") from None


def _long_lines(frame: pd.DataFrame, fields: int) -> int:
    """Lines of a bucket with more fields than the header: pandas refuses such a file."""
    if MALFORMED not in frame.columns:
        return 0
    lines = frame[MALFORMED].dropna()
    return sum(len(next(csv.reader([line]), [])) > fields for line in lines)


# --- buckets of whole clients -----------------------------------------------------------------


def _bucketed(frame: DataFrame, buckets: int) -> DataFrame:
    functions = _pyspark().sql.functions
    # The contract strips client ids, so " c1" and "c1" are one client: hash the stripped text.
    key = functions.regexp_replace(frame["client_id"].cast("string"), r"(?U)^\s+|\s+$", "")
    return frame.withColumn(BUCKET, functions.pmod(functions.xxhash64(key), functions.lit(buckets)))


def _bucket_count(spark: SparkSession, rows: int) -> int:
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    return max(BUCKETS_PER_PARTITION * partitions, math.ceil(rows / ROWS_PER_BUCKET), 1)


def _arrived(frame: pd.DataFrame, columns: list[str], integers: tuple[str, ...]) -> pd.DataFrame:
    """A bucket's frame from Arrow, typed as ``read_table`` types the same rows.

    Text arrives in the dtype pandas reads text as (pyspark 4 on pandas 3: the
    ``str`` dtype; tested). An integer column with a missing value arrives as
    float64 in the buckets that have one and int64 elsewhere; it becomes the
    nullable Int64 (as pandas reads it back from a file pandas wrote) in every
    bucket, so a value prints the same whichever bucket it is in.
    """
    frame = frame.reindex(columns=columns).reset_index(drop=True)
    for name in integers:
        if pd.api.types.is_float_dtype(frame[name]):
            frame[name] = frame[name].astype("Int64")
    return frame


def _integer_fields(frame: DataFrame) -> tuple[str, ...]:
    types = _pyspark().sql.types
    return tuple(f.name for f in frame.schema.fields if isinstance(f.dataType, types.IntegralType))


def _apply_kinds(episodes: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Make an object-dtype episode column parse as it does over the whole file.

    The contract types an object column as numbers when *every* given cell of
    it is a number: a file-wide rule that one bucket cannot see. Only pandas < 3
    reads text as object; pandas 3 reads it as ``str``, which is never re-typed.
    """
    for name, kind in kinds.items():
        if name not in episodes.columns or episodes[name].dtype != object:
            continue
        if kind == "text":
            episodes[name] = episodes[name].astype("string")
        elif kind == "numeric" and not _given(episodes[name]).any():
            episodes[name] = np.full(len(episodes), np.nan)
    return episodes


def _given(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.strip()
    return (text.notna() & (text != "")).fillna(False).astype(bool)


def _placeholder_episodes(sessions: pd.DataFrame) -> pd.DataFrame:
    # As training.jobs.score does without an episodes file: every client ongoing, covariates unknown.
    return pd.DataFrame({"client_id": pd.unique(sessions["client_id"].dropna()), "status": "ongoing"})


@dataclass(frozen=True)
class _Inputs:
    """What every pandas call needs to rebuild its bucket's frames (pickled to the workers)."""

    session_columns: list[str]
    episode_columns: list[str] | None  # None: no episodes file (scoring only)
    session_integers: tuple[str, ...]
    episode_integers: tuple[str, ...]
    registry: InstrumentRegistry
    kinds: dict[str, str] = field(default_factory=dict)

    def frames(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        sessions = _arrived(sessions, self.session_columns, self.session_integers)
        if self.episode_columns is None or episodes is None:
            return sessions, _placeholder_episodes(sessions)
        episodes = _arrived(episodes, self.episode_columns, self.episode_integers)
        return sessions, _apply_kinds(episodes, self.kinds)

    def validated(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None) -> ValidationResult:
        """The contract's typed frames for one bucket (the first pass found the data clean)."""
        result = validate_contract(*self.frames(sessions, episodes), self.registry)
        if not result.ok:  # the input changed between the passes: say what, never where or which value
            rules = sorted({f"{p.file}, column {p.column}: {p.rule}" for p in result.problems})
            raise RuntimeError("data contract problems appeared after validation: " + "; ".join(rules[:5]))
        return result


class SparkInputs:
    """Sessions and episodes as Spark frames keyed by client bucket: the two passes run on these.

    ``sessions`` / ``episodes`` are raw, as read (``read_table_spark``);
    ``episodes`` None means no episodes file (scoring: every client ongoing).
    With ``cache`` the bucketed inputs are repartitioned once and kept
    (memory, then disk) for both passes; ``close()`` (or ``with``) drops them.
    ``names`` maps ``sessions`` / ``episodes`` to the file names problems name.
    """

    def __init__(
        self,
        spark: SparkSession,
        sessions: DataFrame,
        episodes: DataFrame | None = None,
        registry: InstrumentRegistry | None = None,
        *,
        cache: bool = True,
        names: dict[str, str] | None = None,
    ):
        self.spark = spark
        self.registry = registry or default_registry()
        self.names = dict(names or {})
        self.session_rows = sessions.count()
        episode_rows = episodes.count() if episodes is not None else None
        problems = _file_problems(sessions, episodes, self.session_rows, episode_rows)
        if problems:
            raise ContractError([replace(p, file=self.names.get(p.file, p.file)) for p in problems])
        self.buckets = _bucket_count(spark, self.session_rows)
        self.inputs = _Inputs(
            session_columns=[c for c in sessions.columns if c != MALFORMED],
            episode_columns=None if episodes is None else [c for c in episodes.columns if c != MALFORMED],
            session_integers=_integer_fields(sessions),
            episode_integers=() if episodes is None else _integer_fields(episodes),
            registry=self.registry,
        )
        self.episode_schema = None if episodes is None else episodes.schema
        self._cached: list[DataFrame] = []
        self.sessions = self._keyed(sessions, cache)
        self.episodes = None if episodes is None else self._keyed(episodes, cache)

    def _keyed(self, frame: DataFrame, cache: bool) -> DataFrame:
        keyed = _bucketed(frame, self.buckets)
        if not cache:
            return keyed
        partitions = int(self.spark.conf.get("spark.sql.shuffle.partitions"))
        # Partitioned as the cogroup needs it, so neither pass shuffles (or re-reads a CSV) again.
        keyed = keyed.repartition(partitions, BUCKET).persist(_pyspark().StorageLevel.MEMORY_AND_DISK)
        self._cached.append(keyed)
        return keyed

    def __enter__(self) -> SparkInputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached = []

    def apply(self, function, schema: str) -> DataFrame:
        """``function(sessions, episodes)`` on every bucket's pandas frames (episodes None without a file)."""
        grouped = self.sessions.groupBy(BUCKET)
        if self.episodes is not None:
            return grouped.cogroup(self.episodes.groupBy(BUCKET)).applyInPandas(function, schema)

        def sessions_only(sessions: pd.DataFrame) -> pd.DataFrame:  # a plain function: pyspark reads its hints
            return function(sessions, None)

        return grouped.applyInPandas(sessions_only, schema)

    # -- pass 1 -------------------------------------------------------------------------------
    def check(
        self,
        *,
        max_landmark: int = FeatureConfig().max_landmark,
        outcome: Iterable[Instrument] | None = None,
        profile: bool = True,
    ) -> SparkCheck:
        """Validate every bucket and merge what the buckets found (one Spark job).

        ``profile`` adds what ``infer_spec`` and the trajectory fit need
        (``outcome``: the instruments to fit, by default the registry's).
        """
        outcome = tuple(self.registry.by_role("outcome") if outcome is None else outcome)
        function = functools.partial(_check_bucket, self.inputs, max_landmark, outcome, profile)
        found = self.apply(function, PROFILE_SCHEMA).toPandas()
        check = _merge_check(found, self.inputs, self.names, max_landmark)
        check.session_rows = self.session_rows
        if check.ok:
            self.inputs = replace(self.inputs, kinds=check.kinds)
        return check

    def _checked(self, check: SparkCheck | None, **options) -> SparkCheck:
        check = check if check is not None else self.check(**options)
        if not check.ok:
            raise ContractError(check.problems)
        self.inputs = replace(self.inputs, kinds=check.kinds)
        return check

    # -- pass 2 -------------------------------------------------------------------------------
    def features(
        self, spec: FeatureSpec, trajectories: ExpectedTrajectories, check: SparkCheck | None = None
    ) -> DataFrame:
        """The landmark feature table (lazy); validates first unless given a clean ``check``."""
        check = self._checked(check, max_landmark=spec.max_landmark, profile=False)
        schema = feature_schema(spec, self.episode_schema, check.kinds)
        function = functools.partial(_features_bucket, self.inputs, spec, trajectories, _schema_names(schema))
        return self.apply(function, schema)

    def score(self, model: DropoutRiskModel, check: SparkCheck | None = None) -> DataFrame:
        """client_id, session_number, risk (lazy); validates first unless given a clean ``check``."""
        self._checked(check, max_landmark=model.spec.max_landmark, profile=False)
        return self.apply(functools.partial(_score_bucket, self.inputs, model), SCORE_SCHEMA)


def _file_problems(
    sessions: DataFrame, episodes: DataFrame | None, session_rows: int, episode_rows: int | None
) -> list[Problem]:
    """What validate_contract checks before reading a row: required columns, empty files."""
    problems = [
        Problem("sessions", None, c, "required column is missing")
        for c in SESSION_ID_COLUMNS
        if c not in sessions.columns
    ]
    if episodes is not None:
        problems += [
            Problem("episodes", None, c, "required column is missing")
            for c in EPISODE_REQUIRED_COLUMNS
            if c not in episodes.columns
        ]
    if session_rows == 0:
        problems.append(Problem("sessions", None, None, "file has no data rows"))
    if episode_rows == 0:
        problems.append(Problem("episodes", None, None, "file has no data rows"))
    return problems


# --- pass 1: validation, the spec's inputs, trajectory sums -------------------------------------

PROFILE_SCHEMA = (
    "kind string, bucket long, file string, col string, text string, k long, n long, "
    "mx double, my double, sxx double, sxy double, syy double"
)
_PROFILE_COLUMNS = [c.split()[0] for c in PROFILE_SCHEMA.split(", ")]


def _row(kind: str, bucket: int, **values: Any) -> dict[str, Any]:
    return {"kind": kind, "bucket": bucket, **values}


def _profile_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_PROFILE_COLUMNS)
    for name in ("kind", "file", "col", "text"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    for name in ("bucket", "k", "n"):
        frame[name] = pd.to_numeric(frame[name]).astype("Int64")
    for name in ("mx", "my", "sxx", "sxy", "syy"):
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame


def _check_bucket(
    inputs: _Inputs,
    max_landmark: int,
    outcome: tuple[Instrument, ...],
    profile: bool,
    sessions_raw: pd.DataFrame,
    episodes_raw: pd.DataFrame | None,
) -> pd.DataFrame:
    """One bucket's problems (counted by rule), warnings and, when clean, its profile rows."""
    bucket = int((sessions_raw if len(sessions_raw) else episodes_raw)[BUCKET].iloc[0])
    long_lines = [
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
        if raw is not None and columns is not None and (count := _long_lines(raw, len(columns)))
    ]
    if long_lines:
        return _profile_frame(long_lines)
    sessions, episodes = inputs.frames(sessions_raw, episodes_raw)
    if sessions.empty:  # these clients are in the episodes file only
        return _profile_frame(
            [
                _row(
                    "problem",
                    bucket,
                    file="episodes",
                    col="client_id",
                    text="client has an episode but no sessions",
                    n=len(episodes),
                )
            ]
        )
    if episodes.empty:  # ... or in sessions only (their other rules are checked once they have episodes)
        return _profile_frame(
            [
                _row(
                    "problem",
                    bucket,
                    file="sessions",
                    col="client_id",
                    text="client has sessions but no row in episodes",
                    n=int(sessions["client_id"].nunique()),
                )
            ]
        )
    result = validate_contract(sessions, episodes, inputs.registry)
    rows = [_row("warning", bucket, text=w) for w in result.warnings]
    counts: dict[tuple, int] = {}
    for p in result.problems:
        key = (p.file, p.column, p.rule, p.row is not None)
        counts[key] = counts.get(key, 0) + 1
    rows += [
        _row("problem", bucket, file=f, col=c, text=r, n=n if per_row else None)
        for (f, c, r, per_row), n in counts.items()
    ]
    if not result.ok:
        return _profile_frame(rows)
    typed_sessions, typed_episodes = result.sessions, result.episodes
    rows.append(_row("count", bucket, file="sessions", n=len(typed_sessions)))
    rows.append(_row("count", bucket, file="episodes", n=len(typed_episodes)))
    for name in typed_episodes.columns:
        column = typed_episodes[name]
        kind = "unusable" if not is_usable_covariate(column) else "numeric" if is_numeric_covariate(column) else "text"
        rows.append(_row("covariate", bucket, col=name, text=kind, n=int(column.notna().sum())))
        if profile and kind == "text" and name not in EPISODE_NON_COVARIATES:
            rows += [_row("level", bucket, col=name, text=level) for level in categorical_levels(column)]
    if profile:
        for instrument in inputs.registry.present_in(typed_sessions.columns):
            rows.append(
                _row("instrument", bucket, col=instrument.key, n=int(typed_sessions[instrument.key].notna().sum()))
            )
        rows += _trajectory_sums(typed_sessions, outcome, max_landmark, bucket)
    return _profile_frame(rows)


def _trajectory_sums(
    sessions: pd.DataFrame, outcome: tuple[Instrument, ...], max_landmark: int, bucket: int
) -> list[dict[str, Any]]:
    """Per outcome instrument and session k: n, means and centred sums of (intake, score).

    The selection of ``fit_expected_trajectories``: sessions <= max_landmark in
    client and session order, normalised scores, the intake being a client's
    first observed score, observed scores only.
    """
    frame = sessions[sessions["session_number"] <= max_landmark]
    frame = frame.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)
    clients = pd.factorize(frame["client_id"])[0]
    session = frame["session_number"].to_numpy(dtype=np.int64)
    rows = []
    for instrument in outcome:
        if instrument.key not in frame.columns:
            continue
        raw = frame[instrument.key].to_numpy(dtype=float, na_value=np.nan)
        score = np.asarray(instrument.normalise(raw), dtype=float)
        intake = pd.Series(score).groupby(clients, sort=False).transform("first").to_numpy()
        observed = ~np.isnan(score)
        data = pd.DataFrame({"k": session[observed], "x": intake[observed], "y": score[observed]})
        means = data.groupby("k")[["x", "y"]].transform("mean")
        dx, dy = data["x"] - means["x"], data["y"] - means["y"]
        data["dxx"], data["dxy"], data["dyy"] = dx * dx, dx * dy, dy * dy
        sums = data.groupby("k").agg(
            n=("x", "size"),
            mx=("x", "mean"),
            my=("y", "mean"),
            sxx=("dxx", "sum"),
            sxy=("dxy", "sum"),
            syy=("dyy", "sum"),
        )
        rows += [
            _row(
                "trajectory",
                bucket,
                col=instrument.key,
                k=int(k),
                n=int(r.n),
                mx=r.mx,
                my=r.my,
                sxx=r.sxx,
                sxy=r.sxy,
                syy=r.syy,
            )
            for k, r in sums.iterrows()
        ]
    return rows


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
        sessions = pd.DataFrame({key: [1.0 if n else np.nan] for key, n in self.instruments_observed.items()})
        columns = {}
        for name, kind in self.kinds.items():
            if kind == "numeric":
                columns[name] = pd.Series([np.nan], dtype="float64")
            elif kind == "unusable":
                columns[name] = pd.Series([pd.NaT], dtype="datetime64[ns]")
            else:
                columns[name] = pd.Series(self.levels.get(name) or [None], dtype="string")
        episodes = pd.concat(columns, axis=1) if columns else pd.DataFrame()
        return infer_spec(sessions, episodes, registry, config)

    def fit_trajectories(self, spec: FeatureSpec) -> ExpectedTrajectories:
        """``fit_expected_trajectories`` of the whole sessions file, from the buckets' merged sums."""
        if self.trajectory_sums is None or spec.max_landmark != self.max_landmark:
            raise ValueError("this check was run without a profile or for another max_landmark")
        sums = self.trajectory_sums
        return ExpectedTrajectories(
            {
                i.key: curve_from_sums(_merged(sums[sums["col"] == i.key]), spec.max_landmark)
                for i in spec.outcome_instruments
            }
        )


def _merged(sums: pd.DataFrame) -> pd.DataFrame:
    """Per k, the buckets' (n, means, centred sums) combined pairwise in bucket order (Chan et al.)."""
    out = {}
    for k, part in sums.sort_values(["k", "bucket"]).groupby("k"):
        n = mx = my = sxx = sxy = syy = 0.0
        for r in part.itertuples():
            nb = float(r.n)
            total = n + nb
            dx, dy = r.mx - mx, r.my - my
            weight = n * nb / total
            sxx += r.sxx + dx * dx * weight
            sxy += r.sxy + dx * dy * weight
            syy += r.syy + dy * dy * weight
            mx, my, n = (r.mx, r.my, nb) if n == 0 else (mx + dx * nb / total, my + dy * nb / total, total)
        out[int(k)] = {"n": n, "mx": mx, "my": my, "sxx": sxx, "sxy": sxy, "syy": syy}
    return pd.DataFrame.from_dict(out, orient="index", columns=["n", "mx", "my", "sxx", "sxy", "syy"])


def _merge_kinds(found: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """File-wide kind per episode column (see _apply_kinds): text if any bucket has given text."""
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


def _merge_check(found: pd.DataFrame, inputs: _Inputs, names: dict[str, str], max_landmark: int) -> SparkCheck:
    check = SparkCheck(
        problems=_row_free(found, names),
        warnings=sorted(set(found.loc[found["kind"] == "warning", "text"])),
        max_landmark=max_landmark,
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


def check_spark(
    spark: SparkSession,
    sessions: DataFrame,
    episodes: DataFrame | None,
    registry: InstrumentRegistry | None = None,
    *,
    max_landmark: int = FeatureConfig().max_landmark,
    names: dict[str, str] | None = None,
) -> SparkCheck:
    """Validate raw Spark frames against data contract v1 and profile them (one Spark job).

    Problems are row-free (see the module docstring); ``names`` maps
    ``sessions`` / ``episodes`` to the file names to report.
    """
    with SparkInputs(spark, sessions, episodes, registry, cache=False, names=names) as inputs:
        return inputs.check(max_landmark=max_landmark)


# --- pass 2: features ------------------------------------------------------------------------


def _spark_type(data_type, kind: str | None) -> str:
    if isinstance(data_type, _pyspark().sql.types.StringType):
        return "double" if kind == "numeric" else "string"
    return data_type.simpleString()


def feature_schema(spec: FeatureSpec, episode_schema, kinds: dict[str, str] | None = None) -> str:
    """The Spark schema of ``build_features``' frame: ids, label, features (categoricals as text).

    ``session_date`` is a timestamp without time zone (as pandas writes one);
    ``clinic_id`` / ``therapist_id`` keep the episodes file's type.
    """
    kinds = kinds or {}
    types = {f.name: f.dataType for f in episode_schema.fields}
    fields = [("client_id", "string"), ("landmark", "long"), ("session_date", "timestamp_ntz")]
    fields += [(name, _spark_type(types[name], kinds.get(name))) for name in OPTIONAL_EPISODE_IDS if name in types]
    fields += [("status", "string"), ("label", "double")]
    categorical = set(spec.categorical_covariates)
    fields += [(name, "string" if name in categorical else "double") for name in spec.feature_columns()[1:]]
    return ", ".join(f"`{name}` {kind}" for name, kind in fields)


def _schema_names(schema: str) -> list[str]:
    return [part.split("` ")[0].lstrip("`") for part in schema.split(", ")]


def for_arrow(frame: pd.DataFrame) -> pd.DataFrame:
    """Text and Categorical columns as Python strings (None when missing), for pyspark's Arrow writer.

    pandas 3 keeps text in pyarrow arrays, and after a concat or merge such a
    column can be *chunked*; pyspark 4 then fails with "Cannot convert
    pyarrow.lib.ChunkedArray to pyarrow.lib.Array". Plain objects always convert.
    """
    frame = frame.copy()
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.StringDtype | pd.CategoricalDtype | pd.ArrowDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _features_bucket(
    inputs: _Inputs,
    spec: FeatureSpec,
    trajectories: ExpectedTrajectories,
    columns: list[str],
    sessions_raw: pd.DataFrame,
    episodes_raw: pd.DataFrame,
) -> pd.DataFrame:
    if sessions_raw.empty:
        return pd.DataFrame({name: [] for name in columns})
    result = inputs.validated(sessions_raw, episodes_raw)
    return for_arrow(build_features(result.sessions, result.episodes, spec, trajectories)[columns])


def build_features_spark(
    spark: SparkSession,
    sessions: DataFrame,
    episodes: DataFrame,
    spec: FeatureSpec | None = None,
    trajectories: ExpectedTrajectories | None = None,
    *,
    registry: InstrumentRegistry | None = None,
    config: FeatureConfig | None = None,
    names: dict[str, str] | None = None,
) -> DataFrame:
    """``features.landmarks.build_features`` of raw (as-read) Spark frames, as a lazy Spark DataFrame.

    Validates first (one Spark job; ``ContractError`` with row-free problems).
    ``spec`` None: inferred from the whole data as ``infer_spec`` does;
    ``trajectories`` None: fitted on the whole sessions file; both as the
    pandas ``features`` command does. Categorical covariates come back as text
    (``to_pandas_features`` restores them). See ``SparkInputs`` to cache the
    inputs between the passes and to get the spec and the check back.
    """
    registry = registry or default_registry()
    max_landmark = spec.max_landmark if spec is not None else (config or FeatureConfig()).max_landmark
    outcome = spec.outcome_instruments if spec is not None else None
    inputs = SparkInputs(spark, sessions, episodes, registry, cache=False, names=names)
    check = inputs.check(max_landmark=max_landmark, outcome=outcome, profile=spec is None or trajectories is None)
    if not check.ok:
        raise ContractError(check.problems)
    spec = spec or check.infer_spec(registry, config or FeatureConfig())
    trajectories = trajectories or check.fit_trajectories(spec)
    return inputs.features(spec, trajectories, check)


def to_pandas_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Feature rows read back from the Spark engine, sorted and typed as ``build_features`` returns them."""
    out = frame.sort_values(["client_id", "landmark"], kind="stable").reset_index(drop=True)
    for name, levels in spec.categorical_covariates.items():
        values = out[name].astype(object).where(out[name].notna(), None)
        out[name] = pd.Categorical(values, categories=pd.Index(levels, dtype=str))
    return out


# --- pass 2: scoring -------------------------------------------------------------------------

SCORE_SCHEMA = "client_id string, session_number long, risk double"


def _score_bucket(
    inputs: _Inputs, model: DropoutRiskModel, sessions_raw: pd.DataFrame, episodes_raw: pd.DataFrame | None
) -> pd.DataFrame:
    if sessions_raw.empty:
        return pd.DataFrame({"client_id": [], "session_number": [], "risk": []})
    result = inputs.validated(sessions_raw, episodes_raw)
    scored = model.score_history(result.sessions, result.episodes)[["client_id", "session_number", "risk"]]
    if not np.isfinite(scored["risk"].to_numpy(dtype=float, na_value=np.nan)).all():
        raise RuntimeError("scoring produced missing risks")  # a bug, not bad data (as in training.jobs.score)
    return for_arrow(scored)


def scoring_registry(model: DropoutRiskModel, base: InstrumentRegistry | None = None) -> InstrumentRegistry:
    """``base`` (the built-in instruments) plus any the model was trained with."""
    base = base or default_registry()
    return base.with_extra([i for i in model.spec.instruments if i.key not in base])


def score_spark(
    spark: SparkSession,
    model: str | DropoutRiskModel,
    sessions: DataFrame,
    episodes: DataFrame | None = None,
    *,
    registry: InstrumentRegistry | None = None,
    names: dict[str, str] | None = None,
) -> DataFrame:
    """``client_id``, ``session_number``, ``risk`` for every session, as ``training.jobs.score.score_sessions``.

    ``model``: a models:/ or runs:/ URI (loaded once, on the driver, with
    ``models.registry.load_model``, and shipped to the workers with the tasks)
    or a loaded ``DropoutRiskModel``. Each bucket runs
    ``DropoutRiskModel.score_history``, the pandas engine's own code.
    Validates first (``ContractError``, row-free problems). ``registry``
    defaults to the built-in instruments plus the model's.
    """
    if isinstance(model, str):
        from dropout_risk.models.registry import load_model

        model = load_model(model)
    inputs = SparkInputs(spark, sessions, episodes, registry or scoring_registry(model), cache=False, names=names)
    return inputs.score(model)


# --- jobs: files in, Parquet out -------------------------------------------------------------


def _parquet_output(out: str | Path) -> str:
    text = str(out)
    if Path(text.rstrip("/")).suffix.lower() not in PARQUET_SUFFIXES:
        raise DataFileError(f"{text}: the Spark engine writes Parquet: name the output .parquet or .pq")
    return text


def write_parquet_spark(frame: DataFrame, out: str | Path, sort_by: list[str]) -> None:
    """Write ``frame`` as a Parquet dataset: a directory of part files, each sorted by ``sort_by``.

    A file at a local ``out`` is replaced, as the pandas engine does; a
    directory only if it is an earlier Spark output (or empty), so a mistyped
    ``--out`` cannot wipe a folder.
    """
    text = _parquet_output(out)
    if not _has_scheme(text):
        path = Path(text)
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            if any(path.iterdir()) and not (path / "_SUCCESS").exists():
                raise DataFileError(f"{text}: is a directory but not an earlier Spark output; choose another --out")
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    frame.sortWithinPartitions(*sort_by).write.mode("overwrite").parquet(text)


@dataclass(frozen=True)
class SparkJobResult:
    rows: int  # rows written
    clients: int
    warnings: list[str]
    spec: FeatureSpec | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage


def _names(sessions: str | Path, episodes: str | Path | None) -> dict[str, str]:
    names = {"sessions": Path(str(sessions)).name}
    if episodes is not None:
        names["episodes"] = Path(str(episodes)).name
    return names


def features_job(
    spark: SparkSession,
    sessions: str | Path,
    episodes: str | Path,
    out: str | Path,
    registry: InstrumentRegistry,
    config: FeatureConfig,
) -> SparkJobResult:
    """The ``features`` command on Spark: read, validate, infer the spec, fit the curves, build, write."""
    _parquet_output(out)
    clock = _Clock()
    with SparkInputs(
        spark,
        read_table_spark(spark, sessions),
        read_table_spark(spark, episodes),
        registry,
        names=_names(sessions, episodes),
    ) as inputs:
        clock.lap("read and count")
        check = inputs.check(max_landmark=config.max_landmark)
        clock.lap("validate and profile (pass 1)")
        if not check.ok:
            raise ContractError(check.problems)
        spec = check.infer_spec(registry, config)
        write_parquet_spark(inputs.features(spec, check.fit_trajectories(spec), check), out, ["client_id", "landmark"])
        clock.lap("type, build features and write (pass 2)")
    rows = spark.read.parquet(str(out)).count()
    return SparkJobResult(rows=rows, clients=check.clients, warnings=check.warnings, spec=spec, seconds=clock.laps)


def score_job(
    spark: SparkSession,
    model: DropoutRiskModel,
    sessions: str | Path,
    episodes: str | Path | None,
    out: str | Path,
    registry: InstrumentRegistry,
) -> SparkJobResult:
    """The ``score`` command on Spark: read, validate, score every session with the model, write."""
    _parquet_output(out)
    clock = _Clock()
    episode_frame = None if episodes is None else read_table_spark(spark, episodes)
    with SparkInputs(
        spark, read_table_spark(spark, sessions), episode_frame, registry, names=_names(sessions, episodes)
    ) as inputs:
        clock.lap("read and count")
        check = inputs.check(max_landmark=model.spec.max_landmark, profile=False)
        clock.lap("validate (pass 1)")
        if not check.ok:
            raise ContractError(check.problems)
        write_parquet_spark(inputs.score(model, check), out, ["client_id", "session_number"])
        clock.lap("type, score and write (pass 2)")
    return SparkJobResult(rows=check.session_rows, clients=check.clients, warnings=check.warnings, seconds=clock.laps)


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
