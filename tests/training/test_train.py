"""The training job end to end against a real MLflow store: report, run, registry, model card."""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import get_model_info

from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.models.calibration import MIN_CLASS_ROWS
from dropout_risk.models.registry import (
    CHALLENGER,
    MODEL_NAME,
    load_model,
    load_scorer,
    model_uri,
    version_for_alias,
)
from dropout_risk.training.data import load_contract
from dropout_risk.training.jobs.train import TEST_DATA_DIR, train
from tests.support.training import settings_for

LANDMARKS = [str(k) for k in range(1, 9)]


# Modes of the files training wrote, as they were when MLflow was handed them (issue 12, item 10).
ARTIFACT_MODES: dict[str, int] = {}


@pytest.fixture(scope="module")
def trained(mlflow_store, cohorts):
    paths = cohorts.files(1200, seed=5)
    settings = settings_for(mlflow_store)
    original = mlflow.log_artifacts

    def recording(local_dir, artifact_path=None):
        for path in Path(local_dir).rglob("*"):
            ARTIFACT_MODES[f"{artifact_path}/{path.relative_to(local_dir)}"] = stat.S_IMODE(path.stat().st_mode)
        return original(local_dir, artifact_path)

    previous = os.umask(0o022)  # the common default: files it creates are world-readable unless made private
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mlflow, "log_artifacts", recording)
            outcome = train(
                paths["sessions"], paths["episodes"], settings, truth_path=paths["truth"], leave_one_clinic_out=True
            )
    finally:
        os.umask(previous)
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
    assert list(report["baselines"]) == ["landmark_only", "intake_only", "clinical_rule", "logistic"]
    for metrics in (test, *report["baselines"].values()):
        lo, hi = metrics["ci"]["roc_auc"]
        assert lo <= metrics["roc_auc"] <= hi and hi - lo > 0.01
        lo, hi = metrics["ci"]["within_landmark_auc"]
        assert lo <= metrics["within_landmark_auc"] <= hi
    # The session number alone: the pooled AUC it reaches is the session-number effect; within a session, 0.5.
    landmark_only = report["baselines"]["landmark_only"]
    assert landmark_only["within_landmark_auc"] == 0.5 and landmark_only["roc_auc"] > 0.55
    assert test["within_landmark_auc"] > report["baselines"]["intake_only"]["within_landmark_auc"]
    assert test["evaluable_landmarks"] == [
        int(k) for k in LANDMARKS if int(k) not in {e["landmark"] for e in test["excluded_landmarks"]}
    ]
    truth = report["true_risk"]
    assert truth["ratio"] == pytest.approx(test["roc_auc"] / truth["roc_auc"])
    assert truth["within_landmark_ratio"] == pytest.approx(test["within_landmark_auc"] / truth["within_landmark_auc"])
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
    # Issue 16: the card names each model feature with its declared direction and the measured monotonicity.
    assert "`missed_total` (+)" in text and "`srs_mean` (-)" in text and "`ors_expected_dev` (-)" in text
    assert "### A worse session never lowers the risk" in text
    assert run.data.metrics["monotonicity_worst_rate"] == outcome.report["monotonicity"]["worst_rate"]


def test_training_measures_that_a_worse_session_never_lowers_the_risk(trained):
    checked = trained[0].report["monotonicity"]
    assert set(checked["perturbations"]) == {"alliance_down", "outcome_worse", "missed_more", "missed_more_week_later"}
    assert all(p["histories"] > 100 for p in checked["perturbations"].values())
    assert checked["worst_rate_from_2"] == 0.0 and checked["worst_rate"] <= 0.005


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


def _curve_arrays(trajectories) -> dict[str, np.ndarray]:
    """Each instrument's (intercept, slope, resid_sd) rows as one float array (NaN where unfitted)."""
    return {
        key: np.array([curve.intercept, curve.slope, curve.resid_sd], dtype=float)
        for key, curve in trajectories.curves.items()
    }


def _assert_same_curves(actual, expected) -> None:
    actual, expected = _curve_arrays(actual), _curve_arrays(expected)
    assert set(actual) == set(expected)
    for key, values in expected.items():
        np.testing.assert_allclose(actual[key], values, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key)


def test_registered_curves_are_fitted_on_the_training_clients_only(trained, tmp_path):
    # Curves that saw the test clients would make every held-out metric optimistic and fail nothing else.
    outcome, paths, settings = trained
    stored = MlflowClient().download_artifacts(outcome.run_id, f"{TEST_DATA_DIR}/test_episodes.parquet", str(tmp_path))
    test_ids = set(pd.read_parquet(stored)["client_id"].astype(str))
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    ended = set(data.episodes.loc[data.episodes["status"] != "ongoing", "client_id"].astype(str))
    assert len(test_ids) == outcome.report["data"]["test_clients"] and test_ids < ended
    client_ids = data.sessions["client_id"].astype(str)
    training_sessions = data.sessions[client_ids.isin(ended - test_ids)]

    scorer = load_scorer(f"models:/{MODEL_NAME}/{outcome.model_version}")
    expected = fit_expected_trajectories(training_sessions, scorer.spec)
    _assert_same_curves(scorer.trajectories, expected)
    _assert_same_curves(load_model(f"models:/{MODEL_NAME}/{outcome.model_version}").trajectories, expected)
    # The check can tell: the curves fitted on every ended client are not these.
    leaky = fit_expected_trajectories(data.sessions[client_ids.isin(ended)], scorer.spec)
    with pytest.raises(AssertionError):
        _assert_same_curves(scorer.trajectories, leaky)


def test_the_registered_calibrator_has_an_intercept_at_each_landmark_with_enough_training_rows(trained, tmp_path):
    """Platt's intercept per landmark, fitted on the training clients' out-of-fold risks, reaches the scorer."""
    outcome, paths, settings = trained
    stored = MlflowClient().download_artifacts(outcome.run_id, f"{TEST_DATA_DIR}/test_episodes.parquet", str(tmp_path))
    test_ids = set(pd.read_parquet(stored)["client_id"].astype(str))
    model = load_model(f"models:/{MODEL_NAME}/{outcome.model_version}")
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    features = model.build_features(data.sessions, data.episodes)
    training = features[features["label"].notna() & ~features["client_id"].astype(str).isin(test_ids)]
    counts = training.groupby("landmark")["label"].agg(["sum", "count"])
    fewest = np.minimum(counts["sum"], counts["count"] - counts["sum"])
    expected = {int(k) for k, n in fewest.items() if n >= MIN_CLASS_ROWS}
    assert 2 <= len(expected) < len(counts)  # the cohort has landmarks of both kinds
    scorer = load_scorer(f"models:/{MODEL_NAME}/{outcome.model_version}")
    table = model.calibrator.landmark_intercepts_
    assert set(table) == expected
    assert outcome.report["validation"]["calibration_landmarks"] == sorted(expected)
    shifts = outcome.report["validation"]["calibration_intercept_shifts"]
    pooled = model.calibrator.logit_intercept
    assert shifts == pytest.approx({str(k): b - pooled for k, b in table.items()}, abs=1e-12)
    card = Path(MlflowClient().download_artifacts(outcome.run_id, "model_card.md", str(tmp_path))).read_text()
    assert f"an intercept of its own at session(s) {', '.join(map(str, sorted(expected)))}" in card
    at = np.arange(1.0, 9.0)
    np.testing.assert_allclose(
        scorer.calibrate(np.full(8, 0.2), at), model.calibrator.transform(np.full(8, 0.2), at), rtol=0, atol=1e-12
    )


def test_the_input_example_is_no_clients_row(trained, tmp_path):
    """The packaged model travels with the registry: its input example must not be a test client's features."""
    _, paths, settings = trained
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri(CHALLENGER), dst_path=str(tmp_path)))
    example = json.loads((local / "input_example.json").read_text())
    model = load_model(model_uri(CHALLENGER))
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    features = model.build_features(data.sessions, data.episodes).reindex(columns=example["columns"])

    def as_text(values) -> tuple[str, ...]:  # JSON has 1.0 where the table has the integer 1
        return tuple(
            "-" if pd.isna(v) else f"{float(v):.4f}" if isinstance(v, numbers.Number) else str(v) for v in values
        )

    rows = {as_text(row) for row in features.itertuples(index=False)}
    assert example["data"] and not [row for row in example["data"] if as_text(row) in rows]


def test_training_writes_its_artifacts_owner_only(trained):
    """Test clients' sessions wait on disk for MLflow to copy them: 0600 even under umask 022."""
    held = {name: mode for name, mode in ARTIFACT_MODES.items() if name.startswith("evaluation/")}
    assert "evaluation/test_sessions.parquet" in held and "evaluation/test_episodes.parquet" in held
    assert all(mode == 0o600 for mode in held.values()), {k: oct(v) for k, v in held.items()}
