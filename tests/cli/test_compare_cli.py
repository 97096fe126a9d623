"""`dropout-risk compare` from the command line: config-defined sets, reports, plots, clean failures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from mlflow import MlflowClient
from typer.testing import CliRunner

from dropout_risk.cli.compare import compare_command

runner = CliRunner()
app = typer.Typer()


@app.callback()
def _group() -> None:
    """Keep ``compare`` a subcommand, as in ``dropout-risk``."""


app.command("compare")(compare_command)


def _config(tmp_path, store, extra: str = "") -> str:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[training]\nartifact_location = "{store.artifacts}"\n'
        "[compare]\nfolds = 3\nbootstrap_resamples = 50\npair_resamples = 500\n"
        f'experiment = "compare-cli"\n{extra}'
    )
    return str(path)


def _args(paths, config, *more) -> list[str]:
    return [
        "compare",
        "--sessions",
        str(paths["sessions"]),
        "--episodes",
        str(paths["episodes"]),
        "--config",
        config,
        *more,
    ]


def test_config_defined_sets_with_explicit_features(mlflow_store, cohorts, tmp_path):
    paths = cohorts.files(700, seed=4)
    config = _config(
        tmp_path,
        mlflow_store,
        '[compare.feature_sets]\nsrs_core = ["srs_current", "srs_min"]\nscores = ["outcome", "srs_mean"]\n',
    )
    report = tmp_path / "out" / "compare.json"
    result = runner.invoke(
        app,
        _args(
            paths,
            config,
            "--feature-sets",
            "srs_core,scores,attendance",
            "--model",
            "logistic",
            "--landmarks",
            "1-4",
            "--repeats",
            "2",
            "--report",
            str(report),
            "--out",
            str(tmp_path / "plots"),
        ),
    )
    assert result.exit_code == 0, result.output
    for title in ("Feature sets", "ROC AUC by landmark session", "Pairs"):
        assert title in result.output
    data = json.loads(report.read_text())
    sets = data["feature_sets"]
    assert list(sets) == ["srs_core", "scores", "attendance"]
    assert sets["srs_core"]["columns"] == ["landmark", "srs_current", "srs_min"]
    assert sets["scores"]["groups"] == ["outcome"] and sets["scores"]["features"] == ["srs_mean"]
    assert list(sets["srs_core"]["by_landmark"]) == ["1", "2", "3", "4"]
    assert data["design"]["repeats"] == 2 and data["design"]["landmarks"] == [1, 2, 3, 4]
    assert len({s["fold_digest"] for s in sets.values()}) == 1
    assert len(data["pairs"]) == 3
    assert report.with_suffix(".md").read_text().startswith("# Which scores predict dropout?")
    assert (tmp_path / "plots" / "auc_by_landmark.png").is_file()
    assert (tmp_path / "plots" / "roc_srs_core.png").is_file()
    table = pd.read_csv(MlflowClient().download_artifacts(data["run_id"], "comparison.csv", str(tmp_path)))
    assert list(table["feature_set"]) == ["srs_core", "scores", "attendance"]


def test_bad_set_name_exits_1_without_a_run(mlflow_store, cohorts, tmp_path):
    paths = cohorts.files(200, seed=5)
    config = _config(tmp_path, mlflow_store, '[compare.feature_sets]\nmine = ["alliance", "srs_latest"]\n')
    before = _runs()
    result = runner.invoke(app, _args(paths, config, "--feature-sets", "outcome,aliance"))
    assert result.exit_code == 1 and "'aliance'" in result.output
    result = runner.invoke(app, _args(paths, config, "--feature-sets", "outcome,mine"))
    assert result.exit_code == 1 and "'srs_latest'" in result.output
    result = runner.invoke(app, _args(paths, config, "--landmarks", "6-1"))
    assert result.exit_code == 1 and "backwards" in result.output
    assert _runs() == before


def test_bad_data_and_bad_config_exit_1(mlflow_store, cohorts, tmp_path):
    paths = cohorts.write(tmp_path / "data", 200, seed=6)  # its own copy: the test changes a file
    episodes = pd.read_csv(paths["episodes"], dtype=str)
    episodes.loc[0, "status"] = "vanished"
    episodes.to_csv(paths["episodes"], index=False)
    result = runner.invoke(app, _args(paths, _config(tmp_path, mlflow_store), "--feature-sets", "outcome,alliance"))
    assert result.exit_code == 1 and "status" in result.output
    bad = _config(tmp_path, mlflow_store, '[compare.feature_sets]\n"a+b" = ["outcome"]\n')
    result = runner.invoke(app, _args(paths, bad))
    assert result.exit_code == 1 and "invalid configuration" in result.output


def _runs() -> int:
    client = MlflowClient()
    experiment = client.get_experiment_by_name("compare-cli")
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def test_default_sets_on_outcome_only_data_say_what_they_skipped(mlflow_store, cohorts, tmp_path):
    paths = cohorts.write(tmp_path / "data", 500, seed=8)  # its own copy: the alliance column is dropped
    sessions = pd.read_csv(paths["sessions"], dtype=str, keep_default_na=False)
    sessions.drop(columns=["srs"]).to_csv(paths["sessions"], index=False)
    report = tmp_path / "compare.json"
    result = runner.invoke(app, _args(paths, _config(tmp_path, mlflow_store), "--report", str(report)))
    assert result.exit_code == 0, result.output
    assert "skipped group 'alliance' (no alliance features in these data)" in result.output
    assert "model: logistic (" in result.output and "evaluation.small_data_clients" in result.output
    assert "within-session AUC" in result.output
    data = json.loads(report.read_text())
    assert list(data["feature_sets"]) == ["landmark", "outcome", "outcome+attendance+covariates"]


def test_default_sets_on_the_trial_leave_out_the_session_only_completers_reach(mlflow_store, trial_dir, tmp_path):
    paths = {"sessions": trial_dir / "sessions.csv", "episodes": trial_dir / "episodes.csv"}
    report = tmp_path / "trial.json"
    result = runner.invoke(app, _args(paths, _config(tmp_path, mlflow_store), "--report", str(report)))
    assert result.exit_code == 0, result.output
    assert "within-session AUC leaves out session 5: only completers reach session 5" in result.output
    data = json.loads(report.read_text())
    assert data["model"] == "logistic"
    assert data["feature_sets"]["landmark"]["excluded_landmarks"][0]["landmark"] == 5
    assert data["feature_sets"]["outcome"]["evaluable_landmarks"] == [1, 2, 3, 4]
    # The session number alone tells no one apart within a session, compared within the folds that scored it.
    assert data["feature_sets"]["landmark"]["within_landmark_auc"] == pytest.approx(0.5, abs=1e-12)


def test_too_few_clients_names_the_folds_option(mlflow_store, cohorts, tmp_path):
    """The refusal names the folds the user asked for and the option that changes them, not train's setting."""
    paths = cohorts.files(120, seed=8)
    result = runner.invoke(
        app, _args(paths, _config(tmp_path, mlflow_store), "--feature-sets", "outcome,alliance", "--folds", "20")
    )
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "but 20 folds (--folds) need at least 100" in message
    assert "lower --folds or add data" in message and "training.folds" not in message
