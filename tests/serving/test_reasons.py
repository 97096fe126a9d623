"""Risks and reasons a clinician can trust (issue 16), over every scored session of held-out simulated clients.

Both model kinds are fitted as training fits them (one feature per concept, signs and monotone
constraints from the declared directions, Platt calibration, the average client per session) and
served through the compiled scorer, exactly as the API scores a client:

- a factor's words never state a direction its contribution does not have, and say "weaker",
  "behind" or "more" only when one of the client's own values lies on that side of the average
  client's at the same session;
- baseline + concept effects is the calibrated log-odds, and the "changes" sum to the risk's move;
- a change never reads against its concept: when alliance (or outcome, or attendance) only got
  worse, its step does not lower the risk;
- making the latest session worse never lowers the risk (training.evaluation.monotonicity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.concepts import direction, directions, model_columns, model_groups
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import client_features
from dropout_risk.models.calibration import ProbabilityCalibrator
from dropout_risk.models.estimators import make_candidate
from dropout_risk.models.extract import compile_model
from dropout_risk.models.logodds import logit
from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.serving.reasons import HEADLINES
from dropout_risk.serving.scoring import HistoryRow, Scored, ScoringContext, client_history, score_history
from dropout_risk.serving.settings import RiskBands
from dropout_risk.training.evaluation.monotonicity import monotonicity_violations
from tests.support.clinic import build_clinic

KINDS = ("logistic", "lightgbm")


@pytest.fixture(scope="module")
def clinic(cohorts):
    return build_clinic(cohorts.simulate(900, seed=23))


@pytest.fixture(scope="module")
def split(clinic):
    clients = np.sort(clinic.train["client_id"].unique())
    held_out = set(clients[::4])
    return held_out, ~clinic.train["client_id"].isin(held_out).to_numpy()


@pytest.fixture(scope="module", params=KINDS)
def compiled(request, clinic, split):
    _, fit_rows = split
    train, y = clinic.train[fit_rows].reset_index(drop=True), clinic.y[fit_rows]
    columns = model_columns(clinic.spec)
    params = {"n_estimators": 150} if request.param == "lightgbm" else {}
    half = train["client_id"].isin(np.sort(train["client_id"].unique())[::2]).to_numpy()
    candidate = make_candidate(request.param, train, columns, directions(clinic.spec, columns), **params)
    estimator = candidate.fit(train[half], y[half])
    calibrator = ProbabilityCalibrator("sigmoid").fit(estimator.predict_proba(train[~half])[:, 1], y[~half])
    model = DropoutRiskModel(
        spec=clinic.spec,
        trajectories=clinic.trajectories,
        kind=request.param,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
    ).fit_reference(train)
    return compile_model(model)


@dataclass(frozen=True)
class ScoredSession:
    rows: list[HistoryRow]  # the history up to this session
    result: Scored  # as the API answers
    values: dict[str, float]  # the landmark row the model scored (normalised units)
    previous: dict[str, float] | None  # the previous session's row


@pytest.fixture(scope="module")
def scored(compiled, clinic, split) -> list[ScoredSession]:
    """Every session of every held-out client, scored as the API scores it."""
    held_out, _ = split
    context = ScoringContext("1", compiled.spec, compiled.trajectories, compiled, default_registry(), RiskBands())
    sessions = clinic.sessions[clinic.sessions["client_id"].isin(held_out)]
    episodes = clinic.episodes.set_index("client_id")
    out = []
    for client, history in sessions.groupby("client_id", sort=True):
        rows = [_row(r) for r in history.sort_values("session_number").itertuples()]
        covariates = {"age": episodes.at[client, "age"], "gender": episodes.at[client, "gender"]}
        last = min(len(rows), compiled.spec.max_landmark)
        features = client_features(client_history(rows[:last], covariates), compiled.spec, compiled.trajectories)
        table = [{c: float(v[i]) for c, v in features.items()} for i in range(last)]
        for n in range(1, last + 1):
            result = score_history(context, rows[:n], covariates)
            out.append(ScoredSession(rows[:n], result, table[n - 1], table[n - 2] if n > 1 else None))
    return out


def _row(record) -> HistoryRow:
    scores = {k: float(getattr(record, k)) for k in ("ors", "srs") if pd.notna(getattr(record, k))}
    missed = None if pd.isna(record.missed_since_last) else int(record.missed_since_last)
    return HistoryRow(record.session_number, pd.Timestamp(record.session_date).date(), scores, missed)


def _headline_side(factor, k: int) -> int:
    """+1 when the factor's words say "weaker/behind/more", -1 "stronger/ahead/fewer", 0 no comparison."""
    if factor.feature not in HEADLINES:
        return 0
    raises, lowers, _ = HEADLINES[factor.feature]
    return 1 if factor.text.startswith(raises.format(k=k)) else -1 if factor.text.startswith(lowers.format(k=k)) else 0


def test_the_signs_of_the_fitted_model_follow_the_declared_directions(compiled):
    if compiled.kind != "logistic":
        pytest.skip("a booster has no coefficients: the monotonicity test below checks its constraints")
    scorer = compiled._scorer  # the artifact's own numbers, as serving reads them
    for position, coef in zip(scorer.num_x, scorer.coef[scorer.num_design], strict=True):
        column = compiled.columns[position]
        assert coef * direction(compiled.spec, column) >= 0, column


def test_every_session_is_explained_by_concepts_and_no_factor_reads_against_its_contribution(scored, compiled):
    spec, reference = compiled.spec, compiled.reference
    groups = model_groups(spec)
    checked = comparative = against_sign = against_values = 0
    for session in scored:
        k = session.result.risk.landmark
        for factor in session.result.risk.factors:
            assert factor.feature in ("alliance", "outcome", "attendance", "covariates")
            checked += 1
            side = _headline_side(factor, k)
            if side == 0:
                continue
            comparative += 1
            against_sign += side != (1 if factor.effect == "raises" else -1)
            sides = {
                int(np.sign(direction(spec, c) * (session.values[c] - reference.value_at(c, k))))
                for c in groups[factor.feature]
                if not np.isnan(session.values[c]) and reference.value_at(c, k) is not None
            }
            against_values += side not in sides
    assert checked > 2000 and comparative > checked / 2
    assert (against_sign, against_values) == (0, 0)


def test_baseline_and_concept_effects_are_the_calibrated_log_odds(compiled, clinic, split):
    _, fit_rows = split
    X = compiled.matrix(clinic.train[~fit_rows])
    parts = compiled.concept_effects(X)
    total = parts.baseline + sum(parts.effects.values())
    np.testing.assert_allclose(total, logit(compiled.predict(X)), rtol=0, atol=1e-9)


def test_changes_sum_to_the_move_in_risk_and_never_read_against_their_concept(scored, compiled):
    groups = model_groups(compiled.spec)
    steps = {"alliance": groups["alliance"], "outcome": groups["outcome"], "attendance": groups["attendance"]}
    gaps, against = [], 0
    for previous, session in zip(scored, scored[1:], strict=False):
        risk = session.result.risk
        if risk.session_number == 1:
            assert risk.changes == []
            continue
        assert [c.concept for c in risk.changes] == ["returned", "alliance", "outcome", "attendance"]
        moved = 100 * (risk.probability - previous.result.risk.probability)
        gaps.append(abs(sum(c.points for c in risk.changes) - moved))
        for change in risk.changes[1:]:
            worse = _moved_towards_risk(steps[change.concept], session.previous, session.values, compiled.spec)
            against += (worse == 1 and change.points < -1e-9) or (worse == -1 and change.points > 1e-9)
    assert len(gaps) > 500 and max(gaps) < 1e-9
    assert against == 0


def _moved_towards_risk(columns, before, after, spec) -> int:
    """+1 when every column moved towards more risk (or stayed), at least one moved; -1 the mirror; else 0."""
    moves = {
        int(np.sign(direction(spec, c) * (after[c] - before[c])))
        for c in columns
        if not (np.isnan(after[c]) or np.isnan(before[c]))
    } - {0}
    return moves.pop() if len(moves) == 1 else 0


def test_making_the_latest_session_worse_never_lowers_the_risk(compiled, clinic, split):
    held_out, _ = split
    sessions = clinic.sessions[clinic.sessions["client_id"].isin(held_out)]
    report = monotonicity_violations(compiled, sessions, clinic.episodes)
    assert {r.name for r in report.results} == {
        "alliance_down",
        "outcome_worse",
        "missed_more",
        "missed_more_week_later",
    }
    assert all(r.histories_from_2 > 500 for r in report.results)
    assert report.worst_rate_from_2 == 0.0, report.to_json()
    assert report.worst_rate <= 0.005, report.to_json()
