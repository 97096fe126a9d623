"""The training job end to end against a real MLflow store: report, run, registry, model card."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from mlflow.models import get_model_info

from dropout_risk.models.registry import CHALLENGER, MODEL_NAME, load_model, model_uri, version_for_alias
from dropout_risk.training.data import load_contract
from dropout_risk.training.train import train
from tests.support.training import settings_for

LANDMARKS = [str(k) for k in range(1, 9)]


@pytest.fixture(scope="module")
def trained(mlflow_store, cohorts):
    paths = cohorts.files(1200, seed=5)
    settings = settings_for(mlflow_store)
    outcome = train(
        paths["sessions"], paths["episodes"], settings, truth_path=paths["truth"], leave_one_clinic_out=True
    )
    return outcome, paths, settings


def test_report_has_the_contracted_keys(trained):
    report = trained[0].report
    assert report["model_name"] == MODEL_NAME and report["model_version"] == "1"
    assert report["promoted"] is False
    test = report["test"]
    for key in ("roc_auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece", "n_clients"):
        assert isinstance(test[key], (int, float)) and math.isfinite(test[key]), key
    ended = report["data"]["clients"]
    assert ended == 1200 - report["data"]["ongoing_excluded"]  # ongoing episodes have no outcome yet
    assert test["n_clients"] == report["data"]["test_clients"] == round(0.2 * ended)
    assert list(test["by_landmark"]) == LANDMARKS
    assert set(report["baselines"]) == {"clinical_rule", "logistic"}
    for metrics in (test, *report["baselines"].values()):
        lo, hi = metrics["ci"]["roc_auc"]
        assert lo <= metrics["roc_auc"] <= hi and hi - lo > 0.01
    truth = report["true_risk"]
    assert truth["ratio"] == pytest.approx(test["roc_auc"] / truth["roc_auc"])
    assert list(truth["by_landmark"]) == LANDMARKS
    assert set(report["subgroups"]) == {"gender", "age_band", "clinic_id"}
    assert report["leave_one_clinic_out"]["summary"]["clinics"] == 5
    for metrics in report["leave_one_clinic_out"]["by_clinic"].values():
        assert 0.5 < metrics["roc_auc"] < 1
    assert test["sensitivity_top20"] > 0.2 and set(test["net_benefit"]) == {"0.1", "0.2", "0.3", "0.4", "0.5"}
    assert test["alerted_share"] > 0 and test["median_lead_sessions"] >= 0


def test_model_beats_the_clinical_rule(trained):
    report = trained[0].report
    assert report["test"]["roc_auc"] > report["baselines"]["clinical_rule"]["roc_auc"] + 0.05
    assert set(report["selection"]["cv_auc"]) == {"logistic", "lightgbm"}
    assert report["selection"]["chosen"] == report["model_kind"]


def test_the_run_records_params_metrics_data_and_artifacts(trained):
    outcome = trained[0]
    client = MlflowClient()
    run = client.get_run(outcome.run_id)
    assert run.data.params["model_kind"] == outcome.report["model_kind"]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(outcome.report["test"]["roc_auc"])
    assert "test_l8_roc_auc" in run.data.metrics and "true_risk_ratio" in run.data.metrics
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests == {
        "sessions": outcome.report["data"]["sessions_digest"],
        "episodes": outcome.report["data"]["episodes_digest"],
    }
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"plots", "model_card.md", "report.json", "evaluation"} <= artifacts
    plots = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert plots == {"plots/roc.png", "plots/calibration.png", "plots/auc_by_landmark.png", "plots/decision_curve.png"}
    card = client.download_artifacts(outcome.run_id, "model_card.md")
    text = open(card).read()
    for section in (
        "## Intended use",
        "## Data",
        "## Outcome",
        "## Predictors",
        "## Missing data",
        "## Validation design",
        "## Performance",
        "## Limits",
    ):
        assert section in text
    assert "95% CI" in text


def test_registered_as_challenger_with_an_explicit_signature(trained):
    outcome = trained[0]
    version = version_for_alias(CHALLENGER)
    assert version is not None and str(version.version) == outcome.model_version
    info = get_model_info(model_uri(CHALLENGER))
    assert info.signature is not None
    assert [c.name for c in info.signature.outputs.inputs] == ["risk"]
    assert [p.name for p in info.signature.params.params] == ["contributions"]


def test_registered_model_scores_histories(trained):
    _, paths, settings = trained
    model = load_model(model_uri(CHALLENGER))
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    scored = model.score_history(data.sessions, data.episodes)
    assert len(scored) == len(data.sessions)
    assert scored["risk"].between(0, 1).all()
    late = scored[scored["session_number"] > 8]
    assert (late["landmark"] == 8).all() and len(late) > 0
