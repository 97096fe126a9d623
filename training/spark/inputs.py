"""``SparkInputs``: both files keyed by client bucket, and the two passes over them.

Also the frame-level entry points: ``check_spark`` (pass one),
``build_features_spark`` and ``score_spark`` (both passes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import ContractError, file_problems
from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.training.spark.buckets import BUCKET, BucketInputs, bucket_count, bucketed, integer_fields
from dropout_risk.training.spark.build import SCORE_SCHEMA, feature_schema, features_bucket, schema_names, score_bucket
from dropout_risk.training.spark.check import PROFILE_SCHEMA, SparkCheck, check_bucket, merge_check
from dropout_risk.training.spark.session import MALFORMED, load_pyspark, shuffle_partitions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dropout_risk.training.jobs.score import HistoryScorer

BucketFunction = Callable[[pd.DataFrame, pd.DataFrame | None], pd.DataFrame]


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
        episode_columns = None if episodes is None else episodes.columns
        problems = file_problems(sessions.columns, self.session_rows, episode_columns, episode_rows)
        if problems:
            raise ContractError([replace(p, file=self.names.get(p.file, p.file)) for p in problems])
        self.buckets = bucket_count(spark, self.session_rows)
        self.inputs = BucketInputs(
            session_columns=[c for c in sessions.columns if c != MALFORMED],
            episode_columns=None if episodes is None else [c for c in episodes.columns if c != MALFORMED],
            session_integers=integer_fields(sessions),
            episode_integers=() if episodes is None else integer_fields(episodes),
            registry=self.registry,
        )
        self.episode_schema = None if episodes is None else episodes.schema
        self._cached: list[DataFrame] = []
        self.sessions = self._keyed(sessions, cache)
        self.episodes = None if episodes is None else self._keyed(episodes, cache)

    def _keyed(self, frame: DataFrame, cache: bool) -> DataFrame:
        keyed = bucketed(frame, self.buckets)
        if not cache:
            return keyed
        # Partitioned as the cogroup needs it, so neither pass shuffles (or re-reads a CSV) again.
        keyed = keyed.repartition(shuffle_partitions(self.spark), BUCKET)
        keyed = keyed.persist(load_pyspark().StorageLevel.MEMORY_AND_DISK)
        self._cached.append(keyed)
        return keyed

    def __enter__(self) -> SparkInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached = []

    def apply(self, function: BucketFunction, schema: str) -> DataFrame:
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
        function = functools.partial(check_bucket, self.inputs, max_landmark, outcome, profile)
        found = self.apply(function, PROFILE_SCHEMA).toPandas()
        check = merge_check(found, self.inputs, self.names, max_landmark, self.session_rows)
        if check.ok:
            self.inputs = replace(self.inputs, kinds=check.kinds)
        return check

    def _checked(self, check: SparkCheck | None, *, max_landmark: int) -> SparkCheck:
        check = check if check is not None else self.check(max_landmark=max_landmark, profile=False)
        if not check.ok:
            raise ContractError(check.problems)
        self.inputs = replace(self.inputs, kinds=check.kinds)
        return check

    # -- pass 2 -------------------------------------------------------------------------------
    def features(
        self, spec: FeatureSpec, trajectories: ExpectedTrajectories, check: SparkCheck | None = None
    ) -> DataFrame:
        """The landmark feature table (lazy); validates first unless given a clean ``check``."""
        check = self._checked(check, max_landmark=spec.max_landmark)
        if self.episode_schema is None:
            raise ValueError("features need an episodes file")
        schema = feature_schema(spec, self.episode_schema, check.kinds)
        function = functools.partial(features_bucket, self.inputs, spec, trajectories, schema_names(schema))
        return self.apply(function, schema)

    def score(self, model: HistoryScorer, check: SparkCheck | None = None) -> DataFrame:
        """client_id, session_number, risk (lazy); validates first unless given a clean ``check``."""
        self._checked(check, max_landmark=model.spec.max_landmark)
        return self.apply(functools.partial(score_bucket, self.inputs, model), SCORE_SCHEMA)


# --- frames in, frames out ---------------------------------------------------------------------


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

    Problems are row-free (see the package docstring); ``names`` maps
    ``sessions`` / ``episodes`` to the file names to report.
    """
    with SparkInputs(spark, sessions, episodes, registry, cache=False, names=names) as inputs:
        return inputs.check(max_landmark=max_landmark)


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
    (``build.to_pandas_features`` restores them). See ``SparkInputs`` to cache the
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


def score_spark(
    spark: SparkSession,
    model: str | HistoryScorer,
    sessions: DataFrame,
    episodes: DataFrame | None = None,
    *,
    registry: InstrumentRegistry | None = None,
    names: dict[str, str] | None = None,
) -> DataFrame:
    """``client_id``, ``session_number``, ``risk`` for every session, as ``training.jobs.score.score_sessions``.

    ``model``: a models:/ or runs:/ URI (its scorer artifact, loaded once on the driver with
    ``models.registry.load_scorer``, nothing unpickled, and shipped to the workers with the
    tasks) or a loaded scorer. Each bucket runs the scorer's ``score_history``, the pandas
    engine's own code. Validates first (``ContractError``, row-free problems). ``registry``
    defaults to the built-in instruments plus the model's.
    """
    if isinstance(model, str):
        from dropout_risk.models.registry import load_scorer

        model = load_scorer(model)
    registry = registry or default_registry().union(model.spec.instruments)
    inputs = SparkInputs(spark, sessions, episodes, registry, cache=False, names=names)
    return inputs.score(model)
