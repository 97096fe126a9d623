"""Batch scoring from the registry: a risk per session, equal to the model's own scoring."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from dropout_risk.cli.main import app
from dropout_risk.models.registry import load_model
from dropout_risk.training.data import load_contract
from tests.support.mlflow_store import MlflowStore, active_store
from tests.support.training import settings_for

runner = CliRunner()


@pytest.fixture(scope="module")
def scoring(champion):
    """The session's champion (tests/conftest.py), its store active here: the data it learnt from, settings."""
    with active_store(champion.store):
        yield champion.data, settings_for(champion.store)


def test_score_writes_every_session_with_the_champion(scoring, tmp_path):
    paths, settings = scoring
    out = tmp_path / "risk.csv"
    result = runner.invoke(
        app, ["score", "--sessions", str(paths["sessions"]), "--episodes", str(paths["episodes"]), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out, dtype={"client_id": str})
    assert list(scored.columns) == ["client_id", "session_number", "risk"]
    sessions = pd.read_csv(paths["sessions"], dtype={"client_id": str})
    assert len(scored) == len(sessions)
    assert scored["risk"].between(0, 1).all()

    model = load_model("models:/dropout-risk@champion")
    data = load_contract(paths["sessions"], paths["episodes"], settings.registry())
    features = model.build_features(data.sessions, data.episodes)
    direct = features[["client_id", "landmark"]].assign(expected=model.predict_features(features))
    merged = scored.merge(direct, left_on=["client_id", "session_number"], right_on=["client_id", "landmark"])
    np.testing.assert_allclose(merged["risk"], merged["expected"], atol=1e-12)
    # Past the last landmark, the last landmark's risk.
    last = direct[direct["landmark"] == 8].set_index("client_id")["expected"]
    late = scored[scored["session_number"] > 8]
    assert len(late) > 0
    np.testing.assert_allclose(late["risk"], last.loc[late["client_id"]].to_numpy(), atol=1e-12)


def test_score_without_episodes_and_to_parquet(scoring, tmp_path):
    paths, _ = scoring
    out = tmp_path / "risk.parquet"
    result = runner.invoke(
        app, ["score", "--sessions", str(paths["sessions"]), "--out", str(out), "--model", "models:/dropout-risk/1"]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == len(pd.read_csv(paths["sessions"]))


def test_score_rejects_bad_input_and_unknown_models(scoring, tmp_path):
    paths, _ = scoring
    sessions = pd.read_csv(paths["sessions"], dtype=str, keep_default_na=False)
    sessions.loc[2, "ors"] = "-4"
    sessions.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["score", "--sessions", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert "row 3, column ors: must be within 0-40" in " ".join(result.output.split())
    assert not (tmp_path / "o.csv").exists()
    result = runner.invoke(
        app,
        [
            "score",
            "--sessions",
            str(paths["sessions"]),
            "--out",
            str(tmp_path / "o.csv"),
            "--model",
            "models:/dropout-risk@nonexistent",
        ],
    )
    assert result.exit_code == 1 and "cannot load model" in result.output


def _score(paths, sessions, tmp_path, *more: str):
    out = tmp_path / "o.csv"
    args = ["score", "--sessions", str(sessions), "--episodes", str(paths["episodes"]), "--out", str(out), *more]
    result = runner.invoke(app, args)
    return result, " ".join(result.output.split()), out


def test_score_refuses_sessions_without_any_of_the_models_instruments(scoring, tmp_path):
    paths, _ = scoring
    sessions = pd.read_csv(paths["sessions"], dtype=str, keep_default_na=False)
    # Another clinic's instrument instead: the data contract is met, the model's inputs are not.
    sessions.drop(columns=["ors", "srs"]).assign(phq9="12").to_csv(tmp_path / "s.csv", index=False)
    result, output, out = _score(paths, tmp_path / "s.csv", tmp_path)
    assert result.exit_code == 1, result.output
    assert "no scores for any of the model's instruments (ors, srs)" in output
    assert not out.exists()


def test_score_warns_when_some_of_the_models_instruments_are_missing(scoring, tmp_path):
    paths, _ = scoring
    sessions = pd.read_csv(paths["sessions"], dtype=str, keep_default_na=False)
    sessions.drop(columns=["srs"]).to_csv(tmp_path / "s.csv", index=False)
    result, output, out = _score(paths, tmp_path / "s.csv", tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: the sessions have no scores for srs (of the model's ors, srs)" in output
    assert len(pd.read_csv(out)) == len(sessions)


def test_score_without_a_champion_says_how_to_name_another_version(champion, mlflow_template, tmp_path):
    """A store with version 1 registered but no champion; then a store with nothing registered."""
    uri = champion.store.uri.removeprefix("sqlite:///")
    with closing(sqlite3.connect(uri)) as source, closing(sqlite3.connect(tmp_path / "copy.db")) as target:
        source.backup(target)
    store = MlflowStore(f"sqlite:///{tmp_path / 'copy.db'}", champion.store.artifacts)
    with active_store(store):
        MlflowClient().delete_registered_model_alias("dropout-risk", "champion")
        result, output, _ = _score(champion.data, champion.data["sessions"], tmp_path)
    assert result.exit_code == 1
    assert (
        "cannot load model models:/dropout-risk@champion: no version of dropout-risk has the alias champion "
        "(registered versions: 1); name one with --model models:/dropout-risk/1 (a version) or "
        "--model models:/dropout-risk@challenger, or promote one (dropout-risk promote)"
    ) in output
    with active_store(mlflow_template.new_store(tmp_path / "empty")):
        result, output, _ = _score(champion.data, champion.data["sessions"], tmp_path)
    assert result.exit_code == 1 and "no version of dropout-risk is registered yet" in output
