"""`dropout-risk train --promote --report` and `promote` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dropout_risk.cli.main import app

runner = CliRunner()


def test_train_promote_report(mlflow_store, cohorts, tmp_path):
    paths = cohorts.files(1500, seed=8)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[training]\nfolds = 3\nbootstrap_resamples = 30\nartifact_location = "{mlflow_store.artifacts}"\n'
    )
    report_path = tmp_path / "out" / "report.json"
    result = runner.invoke(
        app,
        [
            "train",
            "--sessions",
            str(paths["sessions"]),
            "--episodes",
            str(paths["episodes"]),
            "--truth",
            str(paths["truth"]),
            "--config",
            str(config),
            "--report",
            str(report_path),
            "--promote",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["model_version"] == "1" and isinstance(report["promoted"], bool)
    assert "registered as version 1 (alias challenger)" in result.output
    assert ("version 1: promoted" in result.output) == report["promoted"]
    assert report["true_risk"]["ratio"] > 0.9

    if not report["promoted"]:  # 1,500 clients: the gate's calibration bounds may say no
        rollback = runner.invoke(app, ["promote", "--force", "--reason", "cli test", "--config", str(config)])
        assert rollback.exit_code == 0, rollback.output
    again = runner.invoke(app, ["promote", "--version", "1", "--config", str(config)])
    assert again.exit_code == 1 and "already the champion" in again.output
    forced = runner.invoke(app, ["promote", "--force", "--config", str(config)])
    assert forced.exit_code == 1 and "needs --reason" in forced.output
