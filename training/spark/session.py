"""The Spark session, and files read as ``training.data.read_table`` reads them."""

from __future__ import annotations

import csv
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from dropout_risk.training.data import CSV_SUFFIXES, PARQUET_SUFFIXES, DataFileError

if TYPE_CHECKING:  # pyspark is an optional extra: imported lazily, see load_pyspark()
    from pyspark.sql import DataFrame, SparkSession

INSTALL_HINT = "install the spark extra: pip install '.[spark]' (and Java 17)"
DEFAULT_MASTER = "local[*]"
MALFORMED = "__dropout_risk_malformed_line__"  # Spark's corrupt-record column for CSV input
# pyspark 4 warns on every pandas call that pandas 3 is "not fully supported"; what we use (str dtype,
# datetime64 units, Categorical at the boundary) is converted explicitly and tested.
_PANDAS3_WARNING = "PySpark does not yet fully support pandas"
_SPARK_DEFAULT_SHUFFLE_PARTITIONS = "200"

warnings.filterwarnings("ignore", message=_PANDAS3_WARNING, category=FutureWarning)
# pyspark's own Arrow-to-pandas code passes astype(copy=False), which pandas 3 deprecates.
warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


class SparkUnavailableError(RuntimeError):
    """pyspark is not installed (it is the optional ``spark`` extra)."""


def load_pyspark() -> ModuleType:
    """The pyspark module, or ``SparkUnavailableError`` saying how to install it."""
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise SparkUnavailableError(f"the Spark engine needs pyspark: {INSTALL_HINT}") from None
    return pyspark


def local_cores(master: str) -> int | None:
    """Cores of a ``local``, ``local[N]``, ``local[*]`` or ``local[N,F]`` master; None for a cluster."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if not match:
        return None
    cores = match.group(1)
    return 1 if cores is None else (os.cpu_count() or 1) if cores == "*" else int(cores)


def shuffle_partitions(spark: SparkSession) -> int:
    """The session's ``spark.sql.shuffle.partitions`` (Spark always sets it; 200 is its default)."""
    return int(spark.conf.get("spark.sql.shuffle.partitions") or _SPARK_DEFAULT_SHUFFLE_PARTITIONS)


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
    pyspark = load_pyspark()
    builder = pyspark.sql.SparkSession.builder.master(master).appName(app_name)
    for key, value in {**_session_settings(master), **(config or {})}.items():
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


def _session_settings(master: str) -> dict[str, str]:
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        # The workers import pandera, which imports pyspark.pandas, which warns about pandas 3.
        "spark.executorEnv.PYTHONWARNINGS": f"ignore:{_PANDAS3_WARNING}:FutureWarning",
    }
    cores = local_cores(master)
    if cores is not None:
        # Workers are started with $PYSPARK_PYTHON, else "python3" from PATH: not this venv.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings["spark.sql.shuffle.partitions"] = str(2 * cores)
        settings["spark.default.parallelism"] = str(cores)
    return settings


@contextmanager
def spark_for_job(master: str = DEFAULT_MASTER) -> Iterator[SparkSession]:
    """The active session if there is one (left running), else a new one on ``master``, stopped afterwards."""
    active = load_pyspark().sql.SparkSession.getActiveSession()
    spark = active or spark_session(master)
    try:
        yield spark
    finally:
        if active is None:
            spark.stop()


# --- reading files ----------------------------------------------------------------------------


def has_scheme(path: str) -> bool:
    """True for a URI (``hdfs://``, ``s3a://``, ...), False for a local path."""
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
    if not has_scheme(text) and not Path(text).exists():
        raise DataFileError(f"{text}: file not found")
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataFileError(f"{text}: unsupported file type {suffix!r} (use .csv, .parquet or .pq)")
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = spark.read.parquet(text)
            return frame.toDF(*[c.strip() for c in frame.columns])
        return _read_csv(spark, text)
    except DataFileError:
        raise
    except Exception as exc:  # Spark's AnalysisException names the path, never cell content
        raise DataFileError(f"{text}: not readable by Spark ({type(exc).__name__})") from None


def _read_csv(spark: SparkSession, text: str) -> DataFrame:
    header = spark.read.csv(text, inferSchema=False, header=True, escape='"', encoding="UTF-8").columns
    if not header:
        raise DataFileError(f"{text}: file is empty (expected a header row)")
    types = load_pyspark().sql.types
    names = [c.lstrip("\ufeff").strip() for c in header]
    # Positional: the header's names are replaced by these (stripped, as read_table strips them).
    schema = types.StructType([types.StructField(n, types.StringType()) for n in [*names, MALFORMED]])
    return spark.read.csv(
        text,
        schema=schema,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=MALFORMED,
        enforceSchema=True,
        header=True,
        escape='"',
        encoding="UTF-8",
    )


def long_lines(frame: pd.DataFrame, fields: int) -> int:
    """Lines of a bucket with more fields than the header: pandas refuses such a file."""
    if MALFORMED not in frame.columns:
        return 0
    lines = frame[MALFORMED].dropna()
    return sum(len(next(csv.reader([line]), [])) > fields for line in lines)
