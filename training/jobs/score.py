"""Batch scoring: a risk for every session of every client, from a registered model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from dropout_risk.features.contract import ContractError, validate_contract
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.training.data import placeholder_episodes, read_table, write_table

CLIENTS_PER_CHUNK = 5_000
Advance = Callable[[int], None]


class HistoryScorer(Protocol):
    """What scores histories: the scorer the CLI loads from the model's files (``models.compiled``),
    or the packaged ``DropoutRiskModel``; both give the same risks."""

    @property
    def spec(self) -> FeatureSpec: ...

    def score_history(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame: ...


class MissingInstrumentsError(ValueError):
    """The sessions carry none of the instruments the model learnt from."""


def check_instruments(spec: FeatureSpec, sessions: pd.DataFrame) -> list[str]:
    """Warnings for the model's instruments with no score in ``sessions``; refuses when none has one.

    A missing instrument scores as if never given, so without any the risk rests on attendance
    and covariates alone: a different model from the one that was validated.
    """
    expected = [i.key for i in spec.instruments]
    missing = [key for key in expected if key not in sessions.columns or sessions[key].isna().all()]
    if expected and len(missing) == len(expected):
        raise MissingInstrumentsError(
            f"the sessions have no scores for any of the model's instruments ({', '.join(expected)}): "
            "name their columns as the model does, or score with a model trained on these instruments"
        )
    if missing:
        return [
            f"the sessions have no scores for {', '.join(missing)} (of the model's {', '.join(expected)}): "
            "the risks are computed as if they were never given"
        ]
    return []


def _episodes_or_placeholder(episodes_path: Path | None, sessions: pd.DataFrame) -> pd.DataFrame:
    if episodes_path is not None:
        return read_table(episodes_path)
    # Validate the sessions alone, as ongoing episodes.
    return placeholder_episodes(sessions)


def score_sessions(
    model: HistoryScorer, sessions: pd.DataFrame, episodes: pd.DataFrame, advance: Advance | None = None
) -> pd.DataFrame:
    """``client_id``, ``session_number``, ``risk`` for typed, validated frames, in chunks of clients."""
    codes, ids = pd.factorize(sessions["client_id"], sort=True)
    chunk_of_row = codes // CLIENTS_PER_CHUNK
    # Sort once and slice: selecting each chunk with a mask would rescan every row per chunk.
    order = np.argsort(chunk_of_row, kind="stable")
    bounds = np.searchsorted(chunk_of_row[order], np.arange(int(chunk_of_row.max()) + 2 if len(codes) else 0))
    episode_chunk = pd.Index(ids.astype(object)).get_indexer(episodes["client_id"].astype(object)) // CLIENTS_PER_CHUNK
    parts = []
    for chunk in range(len(bounds) - 1):
        rows = sessions.iloc[order[bounds[chunk] : bounds[chunk + 1]]]
        part_episodes = episodes[episode_chunk == chunk]
        parts.append(model.score_history(rows, part_episodes)[["client_id", "session_number", "risk"]])
        if advance:
            advance(min(CLIENTS_PER_CHUNK, len(ids) - chunk * CLIENTS_PER_CHUNK))
    if not parts:
        return pd.DataFrame({"client_id": [], "session_number": [], "risk": []})
    scored = pd.concat(parts, ignore_index=True)
    return scored.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)


def score_file(
    model: HistoryScorer,
    sessions_path: Path,
    episodes_path: Path | None,
    out: Path,
    registry: InstrumentRegistry,
    advance: Advance | None = None,
    on_total: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    raw_sessions = read_table(sessions_path)
    raw_episodes = _episodes_or_placeholder(episodes_path, raw_sessions)
    data = validate_contract(raw_sessions, raw_episodes, registry)
    if not data.ok:
        raise ContractError(data.problems)
    for warning in check_instruments(model.spec, data.sessions):
        if warn:
            warn(warning)
    if on_total:
        on_total(int(data.sessions["client_id"].nunique()))
    scored = score_sessions(model, data.sessions, data.episodes, advance)
    if scored["risk"].isna().any() or not np.isfinite(scored["risk"]).all():
        raise RuntimeError("scoring produced missing risks")  # a bug, not bad data
    write_table(scored, out)
    return scored
