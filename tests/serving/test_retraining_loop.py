"""The retraining loop on a simulated deployment (issue 13, part 5): monitor -> export -> train -> gate -> promote.

A clinic's clients come from a population whose outcome scores are a whole SD more severe than the
training data's (dropout as trained: 25%). Served by the suite's champion, the monitor says ``retrain``
(the intake drifted beyond ``monitoring.retrain_psi``). Then the commands of README "The retraining
loop": export the clinic's data, train on it (the gate decides), promote; the monitor, judging
against the new champion's reference profile, no longer sees the drift.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.serving.db import make_engine, session_factory
from dropout_risk.serving.migrate import upgrade
from dropout_risk.serving.model_holder import ModelHolder
from tests.support.mlflow_store import active_store
from tests.support.replay import store_scored
from tests.support.training import copy_store

pytestmark = pytest.mark.reliability  # trains a model: seconds of CPU

runner = CliRunner()


def _run(*arguments: str) -> str:
    result = runner.invoke(cli, list(arguments))
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_monitor_says_retrain_then_export_train_gate_promote_and_the_drift_is_gone(
    champion, cohorts, tmp_path, monkeypatch
):
    store = copy_store(champion.store, tmp_path / "registry")
    url = f"sqlite:///{tmp_path}/service.db"
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", url)
    config = tmp_path / "c.toml"
    config.write_text(
        '[training]\ncandidates = ["logistic"]\nfolds = 2\nbootstrap_resamples = 20\n'
        f'artifact_location = "{store.artifacts}"\n'
        "[evaluation]\nsmall_data_clients = 0\n"  # the quick holdout path: this test is about the loop
    )
    with active_store(store):
        holder = ModelHolder("models:/dropout-risk@champion")
        holder.refresh()
        loaded = holder.current
        engine = make_engine(url)
        upgrade(engine)
        with session_factory(engine)() as db:
            store_scored(
                db, "drifted", cohorts.simulate(600, seed=41, intake_shift=1.0), loaded.compiled, loaded.version
            )
            db.commit()
        engine.dispose()

        before = tmp_path / "before.json"
        _run("monitor", "--clinic", "drifted", "--report", str(before), "--config", str(config))
        clinic = json.loads(before.read_text())["clinics"][0]
        assert clinic["status"]["status"] == "retrain", clinic["status"]
        assert any(d["what"] == "ors intake" and d["drifted"] for d in clinic["drift"])

        _run("export", "--out", str(tmp_path / "export"), "--clinic", "drifted", "--config", str(config))
        exported = tmp_path / "export"
        trained = _run(
            "train",
            "--sessions",
            str(exported / "sessions.csv"),
            "--episodes",
            str(exported / "episodes.csv"),
            "--config",
            str(config),
            "--promote",
        )
        assert "registered as version 2 (alias challenger)" in trained
        print("gate:", "promoted" if "version 2: promoted" in trained else "refused, promoted with --force --reason")
        if "version 2: promoted" not in trained:  # the gate said no: the documented override, with its reason
            _run("promote", "--force", "--reason", "retraining loop test: drifted clinic", "--config", str(config))

        after = tmp_path / "after.json"
        _run("monitor", "--clinic", "drifted", "--report", str(after), "--config", str(config))
    report = json.loads(after.read_text())
    assert report["model_version"] == "2" and report["reference_profile"]
    clinic = report["clinics"][0]
    assert not any(d["what"] == "ors intake" and d["drifted"] for d in clinic["drift"])
    assert clinic["status"]["status"] != "retrain"
