"""Client buckets: every row of a client, in both files, in one group; and each group's pandas frames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dropout_risk.features.cells import is_untyped_text
from dropout_risk.features.contract import ValidationResult, validate_contract
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.training.data import placeholder_episodes
from dropout_risk.training.spark.session import load_pyspark, shuffle_partitions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BUCKET = "__dropout_risk_bucket__"
ROWS_PER_BUCKET = 50_000  # session rows per pandas call: ~30 MB of frames, fixed overhead well amortised
BUCKETS_PER_PARTITION = 4  # several buckets per shuffle partition keep the hash spread even


def bucketed(frame: DataFrame, buckets: int) -> DataFrame:
    """``frame`` with a ``BUCKET`` column: a hash of the stripped client id, modulo ``buckets``."""
    functions = load_pyspark().sql.functions
    # The contract strips client ids, so " c1" and "c1" are one client: hash the stripped text.
    key = functions.regexp_replace(frame["client_id"].cast("string"), r"(?U)^\s+|\s+$", "")
    return frame.withColumn(BUCKET, functions.pmod(functions.xxhash64(key), functions.lit(buckets)))


def bucket_count(spark: SparkSession, rows: int) -> int:
    return max(BUCKETS_PER_PARTITION * shuffle_partitions(spark), math.ceil(rows / ROWS_PER_BUCKET), 1)


def integer_fields(frame: DataFrame) -> tuple[str, ...]:
    types = load_pyspark().sql.types
    return tuple(f.name for f in frame.schema.fields if isinstance(f.dataType, types.IntegralType))


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


def _apply_kinds(episodes: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Make a text episode column (as read: object or ``str``) parse as it does over the whole file.

    The contract types such a column as numbers when *every* given cell of it is
    a number: a file-wide rule that one bucket cannot see. A column the whole
    file shows is text becomes the nullable ``string`` dtype, which it keeps.
    """
    for name, kind in kinds.items():
        if name not in episodes.columns or not is_untyped_text(episodes[name]):
            continue
        if kind == "text":
            episodes[name] = episodes[name].astype("string")
        elif kind == "numeric" and not _given(episodes[name]).any():
            episodes[name] = np.full(len(episodes), np.nan)
    return episodes


def _given(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.strip()
    return (text.notna() & (text != "")).fillna(False).astype(bool)


@dataclass(frozen=True)
class BucketInputs:
    """What every pandas call needs to rebuild its bucket's frames (pickled to the workers)."""

    session_columns: list[str]
    episode_columns: list[str] | None  # None: no episodes file (scoring only)
    session_integers: tuple[str, ...]
    episode_integers: tuple[str, ...]
    registry: InstrumentRegistry
    kinds: dict[str, str] = field(default_factory=dict)  # file-wide kind of each episode column (pass one)

    def frames(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        sessions = _arrived(sessions, self.session_columns, self.session_integers)
        if self.episode_columns is None or episodes is None:
            return sessions, placeholder_episodes(sessions)
        episodes = _arrived(episodes, self.episode_columns, self.episode_integers)
        return sessions, _apply_kinds(episodes, self.kinds)

    def validated(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None) -> ValidationResult:
        """The contract's typed frames for one bucket (the first pass found the data clean)."""
        result = validate_contract(*self.frames(sessions, episodes), self.registry)
        if not result.ok:  # the input changed between the passes: say what, never where or which value
            rules = sorted({f"{p.file}, column {p.column}: {p.rule}" for p in result.problems})
            raise RuntimeError("data contract problems appeared after validation: " + "; ".join(rules[:5]))
        return result
