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

import datetime as dt

import numpy as np
import pytest

from dropout_risk.features.concepts import direction, directions, model_columns
from dropout_risk.features.instruments import default_registry
from dropout_risk.models.estimators import make_candidate
from dropout_risk.models.extract import compile_model
from dropout_risk.models.logodds import logit
from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.serving.reasons import concept_factors
from dropout_risk.serving.scoring import HistoryRow, ScoringContext, score_history
from dropout_risk.serving.settings import RiskBands
from dropout_risk.training.evaluation.monotonicity import monotonicity_violations
from tests.support.clinic import build_clinic, landmark_calibrator
from tests.support.reasons import ScoredSession, changes_against_their_concept, check_factors, score_every_session

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
    calibrator = landmark_calibrator("sigmoid", estimator.predict_proba(train[~half])[:, 1], y[~half], train[~half])
    model = DropoutRiskModel(
        spec=clinic.spec,
        trajectories=clinic.trajectories,
        kind=request.param,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
    ).fit_reference(train)
    return compile_model(model)


@pytest.fixture(scope="module")
def scored(compiled, clinic, split) -> list[ScoredSession]:
    """Every session of every held-out client, scored as the API scores it."""
    held_out, _ = split
    sessions = clinic.sessions[clinic.sessions["client_id"].isin(held_out)]
    return score_every_session(compiled, sessions, clinic.episodes, ["age", "gender"])


def test_the_served_model_keeps_the_declared_directions(compiled):
    """The logistic model's coefficients have the declared signs; the booster carries them as constraints."""
    spec = compiled.spec
    scorer = compiled._scorer  # the artifact's own numbers, as serving reads them
    if compiled.kind == "logistic":
        for position, coef in zip(scorer.num_x, scorer.coef[scorer.num_design], strict=True):
            assert coef * direction(spec, compiled.columns[position]) >= 0, compiled.columns[position]
    else:
        declared = [direction(spec, compiled.columns[j]) for j in scorer.selected_x]
        assert any(declared)
        assert f"monotone_constraints={' '.join(map(str, declared))}" in scorer.booster.model_to_string()


def test_every_session_is_explained_by_concepts_and_no_factor_reads_against_its_contribution(scored, compiled):
    check = check_factors(scored, compiled)
    assert check.factors > 2000 and check.comparative > check.factors / 2
    assert (check.against_sign, check.against_values) == (0, 0)


def test_baseline_and_concept_effects_are_the_calibrated_log_odds(compiled, clinic, split):
    _, fit_rows = split
    X = compiled.matrix(clinic.train[~fit_rows])
    parts = compiled.concept_effects(X)
    total = parts.baseline + sum(parts.effects.values())
    np.testing.assert_allclose(total, logit(compiled.predict(X)), rtol=0, atol=1e-9)


def test_changes_sum_to_the_move_in_risk_and_never_read_against_their_concept(scored, compiled):
    gaps = []
    for previous, session in zip(scored, scored[1:], strict=False):
        risk = session.result.risk
        if risk.session_number == 1:
            assert risk.changes == []
            continue
        assert [c.concept for c in risk.changes] == ["returned", "alliance", "outcome", "attendance"]
        moved = 100 * (risk.probability - previous.result.risk.probability)
        gaps.append(abs(sum(c.points for c in risk.changes) - moved))
    assert len(gaps) > 500 and max(gaps) < 1e-9
    checked, against = changes_against_their_concept(scored, compiled)
    assert checked > 1500 and against == 0


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


def test_a_concept_with_no_value_recorded_says_so(compiled):
    """No covariates given (or no alliance score yet): the factor says so instead of quoting nothing."""
    effects = {"covariates": 0.2, "alliance": -0.1, "outcome": 0.0, "attendance": 0.0}
    row = {"landmark": 2.0, "age": None, "gender": None, "srs_current": float("nan"), "srs_mean": float("nan")}
    factors = concept_factors(row, effects, compiled.spec, compiled.reference, 2, compiled.inputs)
    assert [(f.feature, f.text) for f in factors] == [
        ("covariates", "client characteristics not recorded"),
        ("alliance", "no alliance score recorded so far"),
    ]


def test_the_last_landmark_explains_its_changes_and_names_the_clients_categories(compiled):
    """At the last landmark the changes are still shown (past it there are none); a categorical
    covariate is quoted by its level, not left out as if it were not recorded."""
    spec = compiled.spec
    gender, levels = next(iter(spec.categorical_covariates.items()))
    scores = {i.key: float((i.min + i.max) // 2) for i in spec.instruments}
    rows = [
        HistoryRow(k, dt.date(2024, 1, 1) + dt.timedelta(weeks=k), scores, 0) for k in range(1, spec.max_landmark + 2)
    ]
    context = ScoringContext("1", spec, compiled.trajectories, compiled, default_registry(), RiskBands())
    given = {"age": 40.0, gender: levels[-1]}
    at_last = score_history(context, rows[: spec.max_landmark], given).risk
    assert [c.concept for c in at_last.changes] == ["returned", "alliance", "outcome", "attendance"]
    assert score_history(context, rows, given).risk.changes == []
    (covariates,) = [f for f in at_last.factors if f.feature == "covariates"]
    assert levels[-1] in covariates.text and "not recorded" not in covariates.text
