"""The promotion gate on a real registry: first promotion, rejection, forced rollback, logging.

And what each decision leaves for its readers: the server reads the version's ``gate`` and
``gate_reasons`` tags; people read the promotion run (its tags, the gate's settings as params, both
models' figures as metrics, decision.json) and the refusals' messages. The models are trained once per
module (``challenged``, ``held_out``, ``small_data``); each test copies a registry and runs the gate.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from dropout_risk.models.registry import CHALLENGER, CHAMPION, MODEL_NAME, load_model, load_scorer, version_for_alias
from dropout_risk.training.cv_estimate import mean_over_repeats
from dropout_risk.training.evaluation import monotonicity
from dropout_risk.training.evaluation.metrics import expected_calibration_error
from dropout_risk.training.evaluation.stratified_within import stratified_within_landmark_auc
from dropout_risk.training.gate_rules import judge, model_figures
from dropout_risk.training.jobs import promote as gate
from dropout_risk.training.jobs.promote import Decision, PromotionError, promote
from dropout_risk.training.jobs.train import OOF_FILE, TEST_DATA_DIR, TrainOutcome, train
from dropout_risk.training.settings import GateConfig, TrainingSettings
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.training import QUICK, TwoModels, copy_store, settings_for

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


def _promotion_runs(client: MlflowClient, settings: TrainingSettings) -> dict[str, Run]:
    experiment = client.get_experiment_by_name(settings.training.experiment)
    if experiment is None:  # the decision creates it
        return {}
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'promotion'")
    return {run.info.run_id: run for run in runs}


def _decide(settings: TrainingSettings, **options: Any) -> tuple[Decision, Run]:
    """``promote`` and the one promotion run it logged."""
    client = MlflowClient()
    before = _promotion_runs(client, settings)
    decision = promote(settings, **options)
    (run,) = [run for run_id, run in _promotion_runs(client, settings).items() if run_id not in before]
    return decision, run


def _artifact_json(client: MlflowClient, run_id: str, name: str, tmp_path: Path) -> Any:
    folder = tmp_path / run_id
    folder.mkdir(exist_ok=True)
    return json.loads(Path(client.download_artifacts(run_id, name, str(folder))).read_text())


def _nan_as_none(value: Any) -> Any:
    """NaN never equals itself: compare decisions with None in its place."""
    if isinstance(value, dict):
        return {k: _nan_as_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_as_none(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _gate_params(settings: TrainingSettings) -> dict[str, str]:
    return {f"gate.{k}": str(v) for k, v in settings.gate.model_dump().items()}


def _figure_metrics(decision: Decision) -> dict[str, float]:
    figures = {f"challenger_{k}": v for k, v in decision.challenger.items()}
    figures |= {f"champion_{k}": v for k, v in decision.champion.items()}
    return {k: v for k, v in figures.items() if math.isfinite(v)}


def _stored_test_clients(client: MlflowClient, run_id: str, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    stored = Path(client.download_artifacts(run_id, TEST_DATA_DIR, str(tmp_path / "test-clients")))
    return pd.read_parquet(stored / "test_sessions.parquet"), pd.read_parquet(stored / "test_episodes.parquet")


def test_a_first_promotion_is_recorded_on_the_version_and_in_a_run_of_its_own(challenged, tmp_path, monkeypatch):
    registry = challenged.copy_to(tmp_path / "registry")
    checked: list[tuple[pd.DataFrame, pd.DataFrame | None]] = []

    def recorded_check(scorer, sessions, episodes=None, **options):
        checked.append((sessions, episodes))
        return monotonicity.monotonicity_violations(scorer, sessions, episodes, **options)

    monkeypatch.setattr(gate, "monotonicity_violations", recorded_check)
    # The test clients' files are health data: the gate copies them only into folders it removes (on a local
    # store MLflow would hand back the stored files without a folder; on a remote one it would leave a copy).
    download = MlflowClient.download_artifacts
    folders: list[str | None] = []

    def recorded_download(self, run_id, path, dst_path=None):
        folders.append(dst_path)
        return download(self, run_id, path, dst_path)

    monkeypatch.setattr(MlflowClient, "download_artifacts", recorded_download)
    with active_store(registry.store):
        client = MlflowClient()
        client.delete_registered_model_alias(MODEL_NAME, CHAMPION)  # a registry with no champion yet
        settings = settings_for(registry.store)
        decision, run = _decide(settings, version=registry.first)
        monkeypatch.undo()
        tags = client.get_model_version(MODEL_NAME, registry.first).tags
        training_run = client.get_model_version(MODEL_NAME, registry.first).run_id
        report = _artifact_json(client, training_run, "report.json", tmp_path)
        recorded = _artifact_json(client, run.info.run_id, "decision.json", tmp_path)
        sessions, episodes = _stored_test_clients(client, training_run, tmp_path)
        model = load_scorer(f"models:/{MODEL_NAME}/{registry.first}")

    assert decision.promoted and decision.reasons == [] and decision.champion == {}
    assert len(folders) == 2 and all(folder is not None and not Path(folder).exists() for folder in folders)
    assert (tags["gate"], tags["gate_reasons"]) == ("promoted", "passed")
    assert run.info.run_name == f"promotion-v{registry.first}"
    assert (
        run.data.tags.items()
        >= {
            "kind": "promotion",
            "promoted": "True",
            "forced": "False",
            "challenger_version": registry.first,
            "champion_version": "None",
        }.items()
    )
    assert "reason" not in run.data.tags
    assert run.data.params == _gate_params(settings)
    assert run.data.metrics == _figure_metrics(decision) and "challenger_within_landmark_auc" in run.data.metrics
    assert recorded == _nan_as_none(asdict(decision))
    # intake_only's within-session AUC on these test clients, from the model's training report.
    intake = report["baselines"]["intake_only"]["within_landmark_auc"]
    assert decision.challenger["intake_only_within_landmark_auc"] == intake
    # The monotonicity check ran on the stored test clients with their episodes (the covariates move the risk too).
    ((checked_sessions, checked_episodes),) = checked
    pd.testing.assert_frame_equal(checked_sessions, sessions)
    assert checked_episodes is not None
    pd.testing.assert_frame_equal(checked_episodes, episodes)
    expected = monotonicity.monotonicity_violations(model, sessions, episodes)
    assert decision.challenger["monotonicity_worst_rate"] == expected.worst_rate
    assert decision.challenger["monotonicity_worst_rate_from_2"] == expected.worst_rate_from_2


def test_a_rejection_is_recorded_with_its_reasons_and_both_models_figures(challenged, tmp_path):
    decisions = []
    # The second copy logs its decision into an experiment of its own, new, under the settings' artifact
    # location, and its gate also wants a calibration slope no model has: two reasons.
    for copy, experiment in (("a", None), ("b", "gate-decisions")):
        registry = challenged.copy_to(tmp_path / copy)
        with active_store(registry.store):
            client = MlflowClient()
            settings = settings_for(registry.store, **({"experiment": experiment} if experiment else {}))
            if experiment:
                settings = settings.model_copy(update={"gate": GateConfig(slope_min=5.0, slope_max=6.0)})
            decision, run = _decide(settings)  # the challenger alias: the version trained last
            tags = client.get_model_version(MODEL_NAME, registry.second).tags
            recorded = _artifact_json(client, run.info.run_id, "decision.json", tmp_path)
            champion = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
            logged_into = client.get_experiment(run.info.experiment_id)
        decisions.append(decision)

        assert not decision.promoted and len(decision.reasons) >= 1
        assert (decision.challenger_version, decision.champion_version) == (registry.second, registry.first)
        assert champion == registry.first
        assert (tags["gate"], tags["gate_reasons"]) == ("rejected", "; ".join(decision.reasons))
        assert run.info.run_name == f"promotion-v{registry.second}"
        assert (
            run.data.tags.items()
            >= {
                "promoted": "False",
                "forced": "False",
                "challenger_version": registry.second,
                "champion_version": registry.first,
            }.items()
        )
        assert run.data.params == _gate_params(settings)
        assert run.data.metrics == _figure_metrics(decision)
        assert "champion_within_landmark_auc" in run.data.metrics
        assert "challenger_vs_champion_within_delta_ci_lo" in run.data.metrics
        assert recorded == _nan_as_none(asdict(decision))
        assert logged_into.name == settings.training.experiment
        assert Path(logged_into.artifact_location.removeprefix("file://")) == Path(settings.training.artifact_location)
    assert len(decisions[0].reasons) == 1 and len(decisions[1].reasons) == 2
    assert decisions[0].reasons[0] in decisions[1].reasons
    # The gate's bootstrap draws from the configured seed: the same registry gets the same figures.
    first, second = (_nan_as_none([d.challenger, d.champion]) for d in decisions)
    assert first == second

    # The champion is scored as the challenger is: on the challenger's test clients, with their episodes.
    with active_store(registry.store):
        client = MlflowClient()
        training_run = client.get_model_version(MODEL_NAME, registry.second).run_id
        sessions, episodes = _stored_test_clients(client, training_run, tmp_path)
        models = [load_scorer(f"models:/{MODEL_NAME}/{v}") for v in (registry.first, registry.second)]
    max_landmark = min(m.spec.max_landmark for m in models)
    features = models[0].build_features(sessions[sessions["session_number"] <= max_landmark], episodes)
    scored = features[["client_id", "landmark", "label"]].assign(champion=models[0].predict_features(features))
    options = {
        "min_class_clients": settings.evaluation.min_class_clients,
        "n_resamples": settings.training.bootstrap_resamples,
        "seed": settings.training.seed,
    }
    assert _nan_as_none(decision.champion) == _nan_as_none(model_figures(scored, "champion", **options))


def test_a_forced_promotion_records_its_reason_and_no_figures(challenged, tmp_path):
    registry = challenged.copy_to(tmp_path / "registry")
    with active_store(registry.store):
        client = MlflowClient()
        settings = settings_for(registry.store)
        decision, run = _decide(settings, version=registry.second, force=True, reason="  rollback drill ")
        tags = client.get_model_version(MODEL_NAME, registry.second).tags
        recorded = _artifact_json(client, run.info.run_id, "decision.json", tmp_path)
        champion = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)

    assert decision.promoted and decision.forced and decision.reasons == ["forced: rollback drill"]
    assert champion == registry.second
    assert (tags["gate"], tags["gate_reasons"]) == ("promoted", "forced: rollback drill")
    assert (
        run.data.tags.items()
        >= {
            "promoted": "True",
            "forced": "True",
            "reason": "rollback drill",  # trimmed, as in the reasons
            "champion_version": registry.first,
        }.items()
    )
    assert run.data.params == _gate_params(settings)
    assert run.data.metrics == {}  # the gate did not run: no figures
    assert recorded == asdict(decision) and recorded["challenger"] == recorded["champion"] == {}


def _unregistered_version(client: MlflowClient, version: str, root: Path, *, scorer_json: str | None = None) -> str:
    """A new version of ``version``'s model files (its scorer.json replaced if given), with no training run
    unless its scorer is replaced (then ``version``'s run)."""
    files = root / f"copy-of-{version}-{'damaged' if scorer_json else 'no-run'}"
    shutil.copytree(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{version}"), files)
    run_id = None
    if scorer_json is not None:
        (files / "artifacts" / "scorer" / "scorer.json").write_text(scorer_json)
        run_id = client.get_model_version(MODEL_NAME, version).run_id
    return str(client.create_model_version(MODEL_NAME, source=str(files), run_id=run_id).version)


def test_refusals_say_what_is_wrong_and_leave_no_trace(challenged, tmp_path):
    registry = challenged.copy_to(tmp_path / "registry")
    with active_store(registry.store):
        client = MlflowClient()
        settings = settings_for(registry.store)
        before = _promotion_runs(client, settings)
        no_run = _unregistered_version(client, registry.second, tmp_path)
        damaged = _unregistered_version(client, registry.second, tmp_path, scorer_json="{}")
        refusals = {
            "--force needs --reason: say why the gate is being overridden": {"force": True, "reason": "  "},
            f"model {MODEL_NAME} has no version 9": {"version": "9"},
            f"version {registry.first} is already the {CHAMPION}": {"version": registry.first},
            f"version {no_run} has no training run to take its test clients from": {"version": no_run},
            f"version {damaged}'s scorer cannot be read: scorer.json is not a dropout-risk scorer": {
                "version": damaged
            },
        }
        for message, options in refusals.items():
            with pytest.raises(PromotionError) as refused:
                promote(settings, **options)
            assert str(refused.value) == message
        client.delete_registered_model_alias(MODEL_NAME, CHALLENGER)
        with pytest.raises(PromotionError) as refused:
            promote(settings)
        assert str(refused.value) == f"model {MODEL_NAME} has no {CHALLENGER} version: train one first"

        assert _promotion_runs(client, settings).keys() == before.keys()
        for version in (registry.second, no_run, damaged):
            assert "gate" not in client.get_model_version(MODEL_NAME, version).tags
        assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == registry.first


def test_a_training_report_without_intake_only_leaves_its_figure_unknown(challenged, tmp_path):
    """A report without the baseline (or without report.json): NaN, which the first-model rule skips."""
    registry = challenged.copy_to(tmp_path / "registry")
    with active_store(registry.store):
        client = MlflowClient()
        client.delete_registered_model_alias(MODEL_NAME, CHAMPION)  # a first model: the rule that reads it
        settings = settings_for(registry.store)
        trained = client.get_model_version(MODEL_NAME, registry.second)
        test_clients = client.download_artifacts(trained.run_id, TEST_DATA_DIR, str(tmp_path))
        files = mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{registry.second}")
        experiment = client.get_experiment_by_name(settings.training.experiment)
        assert experiment is not None
        figures = []
        for report in (None, {"model": "logistic"}, {"baselines": {"lightgbm": {"within_landmark_auc": 0.7}}}):
            run_id = client.create_run(experiment.experiment_id).info.run_id
            client.log_artifacts(run_id, test_clients, TEST_DATA_DIR)
            if report is not None:
                client.log_dict(run_id, report, "report.json")
            version = client.create_model_version(MODEL_NAME, source=files, run_id=run_id).version
            figures.append(promote(settings, version=str(version)).challenger["intake_only_within_landmark_auc"])
    assert all(math.isnan(figure) for figure in figures)


@pytest.fixture(scope="module")
def small_data(mlflow_template, cohorts, tmp_path_factory) -> tuple[MlflowStore, TrainOutcome]:
    """A first model trained in small-data mode (every client scored out of fold), in a store of its own."""
    with active_store(mlflow_template.new_store(tmp_path_factory.mktemp("small-data"))) as store:
        data = cohorts.files(400, seed=23)
        quick_cv = {"cv_folds": 2, "cv_repeats": 2, "small_data_clients": 0}  # repeats to average over, few fits
        outcome = train(data["sessions"], data["episodes"], settings_for(store, quick_cv, **QUICK), evaluation="cv")
    return store, outcome


def test_in_small_data_mode_the_gate_judges_the_out_of_fold_risks(small_data, tmp_path):
    trained, outcome = small_data
    with active_store(copy_store(trained, tmp_path / "registry")) as store:
        client = MlflowClient()
        settings = settings_for(store)
        decision = promote(settings)
        stored = Path(client.download_artifacts(outcome.run_id, TEST_DATA_DIR, str(tmp_path / "test")))
        oof = pd.read_parquet(stored / OOF_FILE)
        model = load_scorer(f"models:/{MODEL_NAME}/{outcome.model_version}")

    options = {
        "min_class_clients": settings.evaluation.min_class_clients,
        "n_resamples": settings.training.bootstrap_resamples,
        "seed": settings.training.seed,
    }
    # Up to the scorer's last landmark, each client's risk at a session averaged over the CV repeats.
    kept = oof[oof["session_number"] <= model.spec.max_landmark]
    assert (oof["session_number"] == model.spec.max_landmark).any()
    scored = mean_over_repeats(kept, ["registered"]).rename(columns={"registered": "challenger"})
    within = stratified_within_landmark_auc(kept, "registered", **options)
    expected = model_figures(scored, "challenger", **options, within=within)
    assert _nan_as_none({k: decision.challenger[k] for k in expected}) == _nan_as_none(expected)
    # The within-session AUC is stratified by CV fold and repeat, not the pooled risks' own.
    pooled = model_figures(scored, "challenger", **options)
    assert decision.challenger["within_landmark_auc"] != pooled["within_landmark_auc"]
