"""Landmark features: one row per (client, attended session k <= max_landmark).

The row for session k describes the client as known right after session k and
uses ONLY that client's sessions 1..k (docs/domain.md section 5): every
feature is a running ("so far") quantity, computed over the whole table at once
with cumulative sums, running maxima of row positions (a per-client forward
fill) and group-wise cumulative ops on rows sorted by client and session
(``features.client_blocks``). There is no per-client Python code, so a million
sessions take seconds. This module lays out the table and the episode columns;
``features.score_features`` computes the attendance, outcome and alliance
features for both the table and the service's one-client path.

Conventions
- Scores are first normalised so that higher is better (``Instrument.normalise``:
  lower-is-better scales are reflected, differences keep their size). All
  outcome and alliance features are in those units.
- A missing score is never imputed: "current" is the last *observed* score, and
  ``*_sessions_since_obs`` says how stale it is. Every feature is NaN until it can
  be computed; flags are float 1.0 / 0.0 / NaN.
- Reliable-change comparisons allow 1e-9 for float rounding: scores are marked
  in tenths, and 32.3 - 31.3 is a hair below 1 in floating point, yet it is the
  drop of 1 that PCOMS flags.
- ``K_dist_cutoff`` = normalised current score - normalised cutoff. Positive is
  always the healthy side. At exactly 0 the sides follow
  ``Instrument.is_clinical``: a higher-is-better scale is healthy there (ORS 25 is
  not below 25) and a lower-is-better one clinical (PHQ-9 10 is caseness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dropout_risk.features.client_blocks import ClientBlocks, take
from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import InstrumentRegistry, default_registry
from dropout_risk.features.score_features import ROUNDING_TOLERANCE, session_features
from dropout_risk.features.spec import (
    LANDMARK,
    FeatureSpec,
    infer_spec,
    level_text,
    level_texts,
)
from dropout_risk.features.trajectories import ExpectedTrajectories, fit_expected_trajectories

__all__ = ["OPTIONAL_EPISODE_IDS", "ROUNDING_TOLERANCE", "ClientHistory", "build_features", "client_features"]

LABELS = {"dropout": 1.0, "completed": 0.0}
OPTIONAL_EPISODE_IDS = ("clinic_id", "therapist_id")


def build_features(
    sessions: pd.DataFrame,
    episodes: pd.DataFrame,
    spec: FeatureSpec | None = None,
    trajectories: ExpectedTrajectories | None = None,
    *,
    registry: InstrumentRegistry | None = None,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """The landmark feature frame for validated ``sessions`` and ``episodes``.

    ``spec``: when None it is inferred from these data (``registry`` and ``config``
    default to ``default_registry()`` and ``FeatureConfig()``; both are used only
    for that inference).
    ``trajectories``: when None they are fitted on these same sessions. That is a
    convenience for exploration only: a training run fits them on the training
    clients alone and stores them (and the spec) with the model, and scoring
    passes both in, so no row is judged against a curve that saw its own client.

    Returns one row per (client, attended session k <= spec.max_landmark), sorted
    by client_id then landmark, with a RangeIndex and the columns
    ``client_id, landmark, session_date, [clinic_id], [therapist_id], status, label``
    (clinic/therapist only when episodes have them; label is 1.0 dropout, 0.0
    completed, NaN ongoing or unknown) followed by ``spec.feature_columns()``
    without ``landmark``. A spec column the data lack is all-NaN.
    """
    if spec is None:
        spec = infer_spec(sessions, episodes, registry or default_registry(), config or FeatureConfig())
    if trajectories is None:
        trajectories = fit_expected_trajectories(sessions, spec)

    frame, clients, client_ids = _landmark_sessions(sessions, spec.max_landmark)
    session = frame["session_number"].to_numpy(dtype=np.int64)

    columns: dict[str, object] = {
        "client_id": frame["client_id"],
        LANDMARK: session,
        "session_date": frame["session_date"],
    }
    columns.update(_episode_columns(episodes, client_ids, clients.codes, spec))
    date_ns = frame["session_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    columns.update(
        session_features(
            session,
            date_ns,
            _float_column(frame, "missed_since_last"),
            {i.key: _float_column(frame, i.key) for i in spec.instruments},
            clients,
            spec,
            trajectories,
        )
    )

    # Every Series here already carries the sorted RangeIndex, so arrays and Series line up.
    return pd.DataFrame({name: columns[name] for name in _id_columns(episodes) + spec.feature_columns()[1:]})


def _id_columns(episodes: pd.DataFrame) -> list[str]:
    optional = [c for c in OPTIONAL_EPISODE_IDS if c in episodes.columns]
    return ["client_id", LANDMARK, "session_date", *optional, "status", "label"]


# --- one client, no pandas: the service's path ------------------------------------------------


@dataclass(frozen=True)
class ClientHistory:
    """One client's attended sessions as arrays, numbered 1..n in order (validated by the caller).

    ``scores`` maps instrument keys to float arrays (NaN = not given); instruments
    the spec does not use are ignored, spec instruments absent here are all-NaN.
    """

    session_number: np.ndarray
    date_ns: np.ndarray
    missed: np.ndarray
    scores: dict[str, np.ndarray]
    covariates: dict[str, object]


def _numeric_covariate(value: object) -> float:
    """What ``pd.to_numeric(errors="coerce")`` makes of one value."""
    if value is None or isinstance(value, str) and not value.strip():
        return np.nan
    try:
        return float(pd.to_numeric(value))
    except (TypeError, ValueError):
        return np.nan


def client_features(history: ClientHistory, spec: FeatureSpec, trajectories: ExpectedTrajectories) -> dict:
    """The feature columns of ``spec.feature_columns()`` for landmarks 1..min(n, max_landmark).

    Equal to ``build_features``'s rows for the same client (a test holds them to
    exact equality); categorical covariates come as float level codes (NaN for
    missing or unseen levels) instead of a Categorical. Built for the service:
    one client in well under a millisecond.
    """
    keep = history.session_number <= spec.max_landmark
    session = history.session_number[keep].astype(np.int64)
    n = len(session)
    clients = ClientBlocks(codes=np.zeros(n, dtype=np.int64), first_row=np.zeros(n, dtype=np.int64))
    raw = {
        i.key: np.asarray(history.scores[i.key], dtype=float)[keep] if i.key in history.scores else np.full(n, np.nan)
        for i in spec.instruments
    }
    columns: dict[str, np.ndarray] = {LANDMARK: session.astype(float)}
    columns.update(
        session_features(session, history.date_ns[keep], history.missed[keep], raw, clients, spec, trajectories)
    )
    for name in spec.numeric_covariates:
        columns[name] = np.full(n, _numeric_covariate(history.covariates.get(name)))
    for name, levels in spec.categorical_covariates.items():
        value = history.covariates.get(name)
        text = None if value is None else level_text(value)
        code = levels.index(text) if text in levels else np.nan
        columns[name] = np.full(n, float(code))
    return {name: np.asarray(columns[name], dtype=float) for name in spec.feature_columns()}


# --- the sorted session table ---------------------------------------------------------------


def _landmark_sessions(sessions: pd.DataFrame, max_landmark: int) -> tuple[pd.DataFrame, ClientBlocks, pd.Index]:
    """Sessions 1..max_landmark sorted by client and session, the client blocks, the sorted unique ids.

    Later sessions are dropped first: no row may depend on them.
    """
    codes, client_ids = pd.factorize(sessions["client_id"], sort=True)
    if (codes < 0).any():
        raise ValueError("sessions: client_id is missing in some rows")
    number = sessions["session_number"]
    if number.isna().any():
        raise ValueError("sessions: session_number is missing in some rows")
    number = number.to_numpy(dtype=np.int64)
    kept = np.flatnonzero(number <= max_landmark)
    order = kept[np.lexsort((number[kept], codes[kept]))]
    codes, number = codes[order], number[order]
    repeated = (codes[1:] == codes[:-1]) & (number[1:] == number[:-1])
    if repeated.any():
        raise ValueError("sessions: a client has the same session_number twice")
    frame = sessions.take(order).reset_index(drop=True)
    return frame, ClientBlocks.from_sorted_codes(codes), client_ids


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=float, na_value=np.nan)


# --- episode columns: ids, status, label, covariates ---------------------------------------


def _episode_columns(
    episodes: pd.DataFrame, client_ids: pd.Index, codes: np.ndarray, spec: FeatureSpec
) -> dict[str, object]:
    """Per-row episode values, looked up once per client then spread over its rows."""
    if episodes["client_id"].duplicated().any():
        raise ValueError("episodes: a client has more than one episode row")
    row_of_client = pd.Index(episodes["client_id"]).get_indexer(client_ids)
    row = row_of_client[codes]  # -1: client has sessions but no episode -> NaN everywhere

    out: dict[str, object] = {}
    for name in OPTIONAL_EPISODE_IDS:
        if name in episodes.columns:
            out[name] = _take_episode(episodes[name], row)
    out["status"] = _take_episode(episodes["status"], row)
    out["label"] = take(_labels(episodes["status"]), row)
    for name in spec.numeric_covariates:
        values = (
            pd.to_numeric(episodes[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if name in episodes.columns
            else np.full(len(episodes), np.nan)
        )
        out[name] = take(values, row)
    for name, levels in spec.categorical_covariates.items():
        level_codes = _level_codes(episodes[name], levels) if name in episodes.columns else np.full(len(episodes), -1)
        # With no episode rows at all, every row is -1 already (and there is nothing to index).
        per_row = np.where(row >= 0, level_codes[np.maximum(row, 0)], -1) if len(episodes) else row
        out[name] = pd.Categorical.from_codes(per_row, categories=pd.Index(levels, dtype=str))
    return out


def _take_episode(column: pd.Series, row: np.ndarray) -> pd.Series:
    return pd.Series(pd.api.extensions.take(column.array, row, allow_fill=True), name=column.name)


def _labels(status: pd.Series) -> np.ndarray:
    text = status.astype("string")
    label = np.full(len(status), np.nan)
    for value, code in LABELS.items():
        label[(text == value).to_numpy(dtype=bool, na_value=False)] = code
    return label


def _level_codes(column: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """Index of each value in the spec's levels; -1 for missing or unseen (-> NaN category)."""
    known = column.notna().to_numpy()
    codes = pd.Index(levels, dtype=str).get_indexer(level_texts(column).fillna(""))
    return np.where(known, codes, -1)
