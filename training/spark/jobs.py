"""The ``features`` and ``score`` commands on Spark: files in, a Parquet dataset out."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import ContractError
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.private_files import private_dir, private_tree
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.training.data import PARQUET_SUFFIXES, DataFileError
from dropout_risk.training.spark.inputs import SparkInputs
from dropout_risk.training.spark.session import has_scheme, read_table_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dropout_risk.training.jobs.score import HistoryScorer


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
    if not has_scheme(text):
        path = Path(text)
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            if any(path.iterdir()) and not (path / "_SUCCESS").exists():
                raise DataFileError(f"{text}: is a directory but not an earlier Spark output; choose another --out")
            shutil.rmtree(path)
        private_dir(path.parent)
    frame.sortWithinPartitions(*sort_by).write.mode("overwrite").parquet(text)
    if not has_scheme(text):
        private_tree(text)  # Spark writes its part files with the umask's mode


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
    model: HistoryScorer,
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
