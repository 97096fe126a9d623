"""Scoring histories as the API does, and checking that the reasons read coherently (issue 16).

Shared by the simulated-cohort tests (tests/serving/test_reasons.py) and the real-trial test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dropout_risk.features.concepts import direction, model_groups
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import client_features
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.serving.reasons import HEADLINES
from dropout_risk.serving.risk import Factor
from dropout_risk.serving.scoring import HistoryRow, Scored, ScoringContext, client_history, score_history
from dropout_risk.serving.settings import RiskBands


@dataclass(frozen=True)
class ScoredSession:
    rows: list[HistoryRow]  # the history up to this session
    result: Scored  # as the API answers
    values: dict[str, float]  # the landmark row the model scored (normalised units)
    previous: dict[str, float] | None  # the previous session's row


def score_every_session(
    compiled: CompiledModel, sessions: pd.DataFrame, episodes: pd.DataFrame, covariates: list[str]
) -> list[ScoredSession]:
    """Every session (up to the last landmark) of every client in ``sessions``, scored through the serving path."""
    context = ScoringContext("1", compiled.spec, compiled.trajectories, compiled, default_registry(), RiskBands())
    by_client = episodes.set_index("client_id")
    keys = [i.key for i in compiled.spec.instruments]
    out = []
    for client, history in sessions.groupby("client_id", sort=True):
        rows = [_row(r, keys) for r in history.sort_values("session_number").to_dict("records")]
        given = {name: by_client.at[client, name] for name in covariates}
        last = min(len(rows), compiled.spec.max_landmark)
        features = client_features(client_history(rows[:last], given), compiled.spec, compiled.trajectories)
        table = [{c: float(v[i]) for c, v in features.items()} for i in range(last)]
        for n in range(1, last + 1):
            result = score_history(context, rows[:n], given)
            out.append(ScoredSession(rows[:n], result, table[n - 1], table[n - 2] if n > 1 else None))
    return out


def _row(record: dict, keys: list[str]) -> HistoryRow:
    scores = {k: float(record[k]) for k in keys if k in record and pd.notna(record[k])}
    missed = record.get("missed_since_last")
    return HistoryRow(
        int(record["session_number"]),
        pd.Timestamp(record["session_date"]).date(),
        scores,
        None if missed is None or pd.isna(missed) else int(missed),
    )


def headline_side(factor: Factor, k: int) -> int:
    """+1 when the factor's words say "weaker/behind/more", -1 "stronger/ahead/fewer", 0 no comparison."""
    if factor.feature not in HEADLINES:
        return 0
    raises, lowers, _ = HEADLINES[factor.feature]
    if factor.text.startswith(raises.format(k=k)):
        return 1
    return -1 if factor.text.startswith(lowers.format(k=k)) else 0


@dataclass(frozen=True)
class FactorCheck:
    factors: int  # factors checked
    comparative: int  # of which said weaker/behind/more or the mirror
    against_sign: int  # said a direction the contribution does not have
    against_values: int  # said it with no value of the client's on that side of the average client's


def check_factors(scored: list[ScoredSession], compiled: CompiledModel) -> FactorCheck:
    spec, reference = compiled.spec, compiled.reference
    groups = model_groups(spec)
    factors = comparative = against_sign = against_values = 0
    for session in scored:
        k = session.result.risk.landmark
        for factor in session.result.risk.factors:
            assert factor.feature in ("alliance", "outcome", "attendance", "covariates")
            factors += 1
            side = headline_side(factor, k)
            if side == 0:
                continue
            comparative += 1
            against_sign += side != (1 if factor.effect == "raises" else -1)
            sides = {
                int(np.sign(direction(spec, c) * (session.values[c] - average)))
                for c in groups[factor.feature]
                if not np.isnan(session.values[c]) and (average := reference.value_at(c, k)) is not None
            }
            against_values += side not in sides
    return FactorCheck(factors, comparative, against_sign, against_values)


def moved_towards_risk(columns: list[str], before: dict, after: dict, spec) -> int:
    """+1 when every column moved towards more risk (or stayed) and one moved; -1 the mirror; else 0.

    A score given for the first time (or no longer known) has no direction: then 0.
    """
    if any(np.isnan(after[c]) != np.isnan(before[c]) for c in columns):
        return 0
    moves = {
        int(np.sign(direction(spec, c) * (after[c] - before[c])))
        for c in columns
        if not (np.isnan(after[c]) or np.isnan(before[c]))
    } - {0}
    return moves.pop() if len(moves) == 1 else 0


def changes_against_their_concept(scored: list[ScoredSession], compiled: CompiledModel) -> tuple[int, int]:
    """(changes checked, changes that lowered the risk although their concept only got worse, or the mirror)."""
    groups = model_groups(compiled.spec)
    checked = against = 0
    for session in scored:
        for change in session.result.risk.changes:
            if change.concept == "returned" or session.previous is None:
                continue
            checked += 1
            worse = moved_towards_risk(groups[change.concept], session.previous, session.values, compiled.spec)
            against += (worse == 1 and change.points < -1e-9) or (worse == -1 and change.points > 1e-9)
    return checked, against
