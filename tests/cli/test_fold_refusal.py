"""Too few clients for the folds: the refusal names the folds the user asked for and the setting that changes them."""

from __future__ import annotations

from typer.testing import CliRunner

from dropout_risk.cli.main import app

runner = CliRunner()


def test_compare_names_its_folds_option(mlflow_store, cohorts, tmp_path):
    paths = cohorts.files(120, seed=8)
    config = tmp_path / "c.toml"
    config.write_text(f'[training]\nartifact_location = "{mlflow_store.artifacts}"\n[compare]\nexperiment = "folds"\n')
    result = runner.invoke(
        app,
        [
            "compare",
            "--sessions",
            str(paths["sessions"]),
            "--episodes",
            str(paths["episodes"]),
            "--config",
            str(config),
            "--feature-sets",
            "outcome,alliance",
            "--folds",
            "20",
        ],
    )
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "but 20 folds (--folds) need at least 100" in message
    assert "lower --folds or add data" in message and "training.folds" not in message
