"""The example config file is the documentation of every setting: it must load as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dropout_risk.features.config import load_settings
from dropout_risk.training.settings import EvaluationConfig, TrainingConfig, TrainingSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "dropout-risk.example.toml"


def test_example_config_loads_and_states_the_defaults():
    settings = load_settings(TrainingSettings, EXAMPLE)
    defaults = TrainingConfig()
    assert settings.training.model_dump(
        exclude={"artifact_location", "min_clients_per_fold", "logistic_c", "alert_top_fraction"}
    ) == defaults.model_dump(exclude={"artifact_location", "min_clients_per_fold", "logistic_c", "alert_top_fraction"})
    assert "bdi2" in settings.registry()
    assert settings.evaluation == EvaluationConfig()  # min_class_clients 10, small data below 1000, 5 x 5 CV
    assert (EvaluationConfig().small_data_clients, EvaluationConfig().cv_folds, EvaluationConfig().cv_repeats) == (
        1000,
        5,
        5,
    )


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_TRAINING__FOLDS", "10")
    assert load_settings(TrainingSettings, EXAMPLE).training.folds == 10


def test_unknown_keys_are_refused(tmp_path):
    (tmp_path / "c.toml").write_text("[training]\nfoldz = 3\n")
    with pytest.raises(ValidationError, match="foldz"):
        load_settings(TrainingSettings, tmp_path / "c.toml")


@pytest.mark.parametrize(
    "settings_class",
    [
        "dropout_risk.training.settings:TrainingSettings",
        "dropout_risk.training.compare_settings:CompareSettings",
        "dropout_risk.serving.settings:ServingSettings",
    ],
)
def test_every_command_reads_the_one_example_file(settings_class):
    import importlib

    module, name = settings_class.split(":")
    settings = load_settings(getattr(importlib.import_module(module), name), EXAMPLE)
    assert settings.features.max_landmark == 8 and "bdi2" in settings.registry()


def test_an_unknown_top_level_key_is_refused(tmp_path):
    (tmp_path / "c.toml").write_text('databse_url = "sqlite:///x.db"\n')
    with pytest.raises(ValidationError, match="databse_url"):
        load_settings(TrainingSettings, tmp_path / "c.toml")
