"""Bad training data stop the job before anything reaches MLflow, with a clear message and exit 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from dropout_risk.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def base(cohorts) -> dict[str, Path]:
    return cohorts.files(300, seed=21)


def _write(tmp_path: Path, sessions: pd.DataFrame, episodes: pd.DataFrame) -> tuple[Path, Path]:
    sessions.to_csv(tmp_path / "s.csv", index=False)
    episodes.to_csv(tmp_path / "e.csv", index=False)
    return tmp_path / "s.csv", tmp_path / "e.csv"


def _broken(kind: str, base: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    sessions = pd.read_csv(base["sessions"], dtype=str, keep_default_na=False)
    episodes = pd.read_csv(base["episodes"], dtype=str, keep_default_na=False)
    if kind == "out_of_range":
        sessions.loc[4, "srs"] = "55"
    elif kind == "one_class":
        episodes["status"] = episodes["status"].replace("dropout", "completed")
    elif kind == "too_few":
        keep = episodes["client_id"].head(20)
        sessions, episodes = sessions[sessions["client_id"].isin(keep)], episodes[episodes["client_id"].isin(keep)]
    elif kind == "missing_column":
        sessions = sessions.drop(columns=["session_date"])
    return sessions, episodes


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("out_of_range", "row 5, column srs: must be within 0-40"),
        ("one_class", "every ended episode has the same status (completed)"),
        (
            "too_few",
            "but 3 folds (training.folds) and a test set need at least 20 "
            "(5 per fold, training.min_clients_per_fold); lower training.folds or add data",
        ),
        ("missing_column", "column session_date: required column is missing"),
    ],
)
def test_bad_training_data_registers_nothing(kind, message, base, mlflow_store, tmp_path):
    sessions, episodes = _write(tmp_path, *_broken(kind, base))
    config = tmp_path / "c.toml"
    config.write_text(
        f'[training]\nfolds = 3\nartifact_location = "{mlflow_store.artifacts}"\nexperiment = "rejects"\n'
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--sessions",
            str(sessions),
            "--episodes",
            str(episodes),
            "--config",
            str(config),
            "--report",
            str(tmp_path / "r.json"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.json").exists()
    client = MlflowClient()
    assert client.search_registered_models() == []
    assert client.get_experiment_by_name("rejects") is None
