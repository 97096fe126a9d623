"""Pass two: each bucket's landmark features or risks, by the pandas engine's own functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dropout_risk.features.landmarks import OPTIONAL_EPISODE_IDS, build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.training.spark.buckets import BucketInputs
from dropout_risk.training.spark.session import load_pyspark

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

    from dropout_risk.training.jobs.score import HistoryScorer

SCORE_SCHEMA = "client_id string, session_number long, risk double"


def _spark_type(data_type: DataType, kind: str | None) -> str:
    if isinstance(data_type, load_pyspark().sql.types.StringType):
        return "double" if kind == "numeric" else "string"
    return data_type.simpleString()


def feature_schema(spec: FeatureSpec, episode_schema: StructType, kinds: dict[str, str] | None = None) -> str:
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


def schema_names(schema: str) -> list[str]:
    """The column names of a schema written as ``feature_schema`` writes it."""
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


def features_bucket(
    inputs: BucketInputs,
    spec: FeatureSpec,
    trajectories: ExpectedTrajectories,
    columns: list[str],
    sessions_raw: pd.DataFrame,
    episodes_raw: pd.DataFrame,
) -> pd.DataFrame:
    """One bucket's landmark feature rows (``columns``), ready for Arrow."""
    if sessions_raw.empty:
        return pd.DataFrame({name: [] for name in columns})
    result = inputs.validated(sessions_raw, episodes_raw)
    return for_arrow(build_features(result.sessions, result.episodes, spec, trajectories)[columns])


def to_pandas_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Feature rows read back from the Spark engine, sorted and typed as ``build_features`` returns them."""
    out = frame.sort_values(["client_id", "landmark"], kind="stable").reset_index(drop=True)
    for name, levels in spec.categorical_covariates.items():
        values = out[name].astype(object).where(out[name].notna(), None)
        out[name] = pd.Categorical(values, categories=pd.Index(levels, dtype=str))
    return out


def score_bucket(
    inputs: BucketInputs, model: HistoryScorer, sessions_raw: pd.DataFrame, episodes_raw: pd.DataFrame | None
) -> pd.DataFrame:
    """One bucket's risks: ``client_id``, ``session_number``, ``risk`` for every session."""
    if sessions_raw.empty:
        return pd.DataFrame({"client_id": [], "session_number": [], "risk": []})
    result = inputs.validated(sessions_raw, episodes_raw)
    scored = model.score_history(result.sessions, result.episodes)[["client_id", "session_number", "risk"]]
    if not np.isfinite(scored["risk"].to_numpy(dtype=float, na_value=np.nan)).all():
        raise RuntimeError("scoring produced missing risks")  # a bug, not bad data (as in training.jobs.score)
    return for_arrow(scored)
