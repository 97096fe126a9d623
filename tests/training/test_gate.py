"""The promotion gate on a real registry: first promotion, rejection, forced rollback, logging."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from dropout_risk.models.registry import CHAMPION, MODEL_NAME, load_model, load_scorer, version_for_alias
from dropout_risk.training.evaluation.metrics import expected_calibration_error
from dropout_risk.training.gate_rules import judge
from dropout_risk.training.jobs.promote import PromotionError, promote
from dropout_risk.training.jobs.train import TEST_DATA_DIR, TrainOutcome, train
from dropout_risk.training.settings import GateConfig
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.training import TwoModels, copy_store, settings_for

GOOD = {
    "within_landmark_auc": 0.66,
    "within_landmark_auc_ci_lo": 0.60,
    "within_landmark_auc_ci_hi": 0.72,
    "calibration_slope": 1.3,
    "calibration_slope_ci_lo": 0.9,
    "calibration_slope_ci_hi": 1.7,
    "ece": 0.06,
    "ece_ci_lo": 0.03,
    "ece_ci_hi": 0.09,
    "intake_only_within_landmark_auc": 0.55,
}


def test_a_first_model_is_judged_on_intervals_not_points():
    gate = GateConfig()
    # Slope 1.3 and ECE 0.06 are outside the bounds as points, but their intervals reach into them.
    assert judge(GOOD, None, gate) == []
    no_signal = {
        **GOOD,
        "within_landmark_auc": 0.52,
        "within_landmark_auc_ci_lo": 0.46,
        "within_landmark_auc_ci_hi": 0.58,
    }
    assert judge(no_signal, None, gate) == [
        "within-session AUC 0.520 (0.460-0.580): its interval does not exclude 0.5, so these data do not show "
        "that the scores predict dropout beyond the session number",
        "within-session AUC 0.520 does not beat intake_only's 0.550 (the session number and the intake scores "
        "alone) on the same test clients",
    ]
    assert judge({**GOOD, "calibration_slope_ci_lo": 1.21}, None, gate) == [
        "calibration slope 1.300 (1.210-1.700): its interval does not reach 0.8-1.2"
    ]
    assert judge({**GOOD, "calibration_slope_ci_hi": 0.79, "calibration_slope_ci_lo": 0.5}, None, gate)[0].startswith(
        "calibration slope"
    )
    assert judge({**GOOD, "ece_ci_lo": 0.051}, None, gate) == [
        "ECE 0.060 (0.051-0.090): even its lower bound is above 0.05"
    ]
    assert len(judge({**GOOD, "ece_ci_lo": float("nan")}, None, gate)) == 1  # unknown calibration never passes
    assert judge({**GOOD, "intake_only_within_landmark_auc": float("nan")}, None, gate) == []  # not in the report
    # A worse session must not lower the risk (issue 16): at most gate.max_monotonicity_violation (0.5%).
    assert judge({**GOOD, "monotonicity_worst_rate": 0.005}, None, gate) == []
    (refusal,) = judge({**GOOD, "monotonicity_worst_rate": 0.0051}, None, gate)
    assert refusal.startswith("the risk fell when the latest session was made worse in 0.5% of held-out histories")
    assert "gate.max_monotonicity_violation" in refusal
    assert len(judge({**GOOD, "monotonicity_worst_rate": float("nan")}, None, gate)) == 1


def test_against_a_champion_the_lower_bound_of_the_paired_difference_decides():
    gate = GateConfig()
    champion = {**GOOD, "within_landmark_auc": 0.67}
    close = {
        **GOOD,
        "vs_champion_within_delta": -0.01,
        "vs_champion_within_delta_ci_lo": -0.019,
        "vs_champion_within_delta_ci_hi": 0.0,
    }
    assert judge(close, champion, gate) == []  # a point 0.01 below the champion is not a reason
    worse = {**close, "vs_champion_within_delta_ci_lo": -0.021}
    assert judge(worse, champion, gate) == [
        "within-session AUC 0.660 vs the champion's 0.670 on the same test clients: difference -0.010 "
        "(-0.021-0.000); its lower bound is more than 0.02 below the champion's (gate.max_auc_drop)"
    ]
    # Against a champion the first-model rules (0.5, intake_only) do not apply.
    assert judge({**close, "within_landmark_auc_ci_lo": 0.45}, champion, gate) == []


@pytest.fixture(scope="module")
def challenged(champion, tmp_path_factory) -> TwoModels:
    """The suite's champion and, trained on the same clients, a challenger that may only see age and gender.

    Only training runs here (the champion is the suite's, already trained): every test copies the
    registry, so the gate itself runs in the tests.
    """
    store = copy_store(champion.store, tmp_path_factory.mktemp("gate"))
    with active_store(store):
        weak = settings_for(store, feature_groups=["covariates"])
        second = train(champion.data["sessions"], champion.data["episodes"], weak)
    return TwoModels(store, champion.version, second.model_version)


def test_a_first_model_that_passes_the_gate_is_promoted(challenged, tmp_path):
    registry = challenged.copy_to(tmp_path)
    with active_store(registry.store):
        MlflowClient().delete_registered_model_alias(MODEL_NAME, CHAMPION)  # a registry with no champion yet
        decision = promote(settings_for(registry.store), version=registry.first)
        assert decision.promoted and decision.champion_version is None and not decision.forced, decision.reasons
        assert decision.reasons == [] and decision.challenger["within_landmark_auc_ci_lo"] > 0.5
        assert str(version_for_alias(CHAMPION).version) == registry.first
        assert MlflowClient().get_model_version(MODEL_NAME, registry.first).tags["gate"] == "promoted"


def test_gate_rejects_a_worse_challenger_and_rolls_back_only_with_a_reason(challenged, tmp_path):
    registry = challenged.copy_to(tmp_path)
    with active_store(registry.store):
        settings = settings_for(registry.store)
        decision = promote(settings)  # the challenger alias: the version trained last
        assert not decision.promoted and decision.challenger_version == registry.second
        assert decision.champion_version == registry.first
        assert any("below the champion" in r for r in decision.reasons)
        assert decision.champion["n_clients"] == decision.challenger["n_clients"] == 285  # same test clients
        assert str(version_for_alias(CHAMPION).version) == registry.first
        client = MlflowClient()
        assert client.get_model_version(MODEL_NAME, registry.second).tags["gate"] == "rejected"

        with pytest.raises(PromotionError, match="needs --reason"):
            promote(settings, version=registry.second, force=True)
        forced = promote(settings, version=registry.second, force=True, reason="rollback drill")
        assert forced.promoted and forced.forced and forced.reasons == ["forced: rollback drill"]
        assert str(version_for_alias(CHAMPION).version) == registry.second
        with pytest.raises(PromotionError, match="already the champion"):
            promote(settings, version=registry.second)
        with pytest.raises(PromotionError, match="no version 9"):
            promote(settings, version="9")

        runs = client.search_runs(
            [client.get_experiment_by_name(settings.training.experiment).experiment_id],
            filter_string="tags.kind = 'promotion'",
        )
    assert len(runs) == 3  # the suite's champion's forced promotion, the rejection, the rollback
    assert {r.data.tags.get("reason") for r in runs} == {"test fixture", None, "rollback drill"}
    (rejected,) = [r for r in runs if r.data.tags["promoted"] == "False"]
    assert "challenger_within_landmark_auc" in rejected.data.metrics
    assert "champion_within_landmark_auc" in rejected.data.metrics
    assert "challenger_vs_champion_within_delta_ci_lo" in rejected.data.metrics
    assert client.get_model_version(MODEL_NAME, registry.second).tags["gate"] == "promoted"


DOCUMENTED_ECE_BINS = 10  # expected_calibration_error: ten equal-width bins, as calibration_curve(strategy="uniform")


@pytest.fixture(scope="module")
def held_out(mlflow_template, cohorts, tmp_path_factory) -> tuple[MlflowStore, TrainOutcome]:
    """A first model, trained on the holdout path, in a store of its own; its pickled model broken.

    The holdout path: the gate re-scores the model on its held-out clients (small-data mode judges OOF
    risks). The gate scores the plain scorer files, as serving does: it must not need the pickled model.
    """
    with active_store(mlflow_template.new_store(tmp_path_factory.mktemp("held-out"))) as store:
        data = cohorts.files(900, seed=7)  # a cohort whose bins miss in both directions
        outcome = train(data["sessions"], data["episodes"], settings_for(store), evaluation="holdout")
        pickled = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{outcome.model_version}"))
        (pickled / "python_model.pkl").write_bytes(b"not a pickle")
    return store, outcome


def test_the_gate_judges_the_ece_of_the_documented_bins(held_out, tmp_path):
    trained, outcome = held_out
    with active_store(copy_store(trained, tmp_path)) as store:
        settings = settings_for(store)
        model = load_scorer(f"models:/{MODEL_NAME}/{outcome.model_version}")
        decision = promote(settings)
        assert decision.challenger_version == outcome.model_version and decision.champion_version is None
        with pytest.raises(Exception):  # noqa: B017, PT011 - the pickle really is broken
            load_model(f"models:/{MODEL_NAME}/{outcome.model_version}")

        stored = Path(MlflowClient().download_artifacts(outcome.run_id, TEST_DATA_DIR, str(tmp_path / "test")))
        sessions = pd.read_parquet(stored / "test_sessions.parquet")
        features = model.build_features(
            sessions[sessions["session_number"] <= model.spec.max_landmark],
            pd.read_parquet(stored / "test_episodes.parquet"),
        )
    y, p = features["label"].to_numpy(dtype=int), model.predict_features(features)
    gate_ece = decision.challenger["ece"]
    assert gate_ece == pytest.approx(expected_calibration_error(y, p, n_bins=DOCUMENTED_ECE_BINS), abs=1e-12)
    # The figure pins the bin count: other counts give other figures on these rows (they would not if
    # every bin missed in the same direction: the ECE is then |mean(y - p)| whatever the bins).
    for other in (5, 8, 15, 20):
        assert abs(expected_calibration_error(y, p, n_bins=other) - gate_ece) > 1e-6, other
