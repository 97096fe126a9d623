"""The example config file is the documentation of every setting: it must load as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from features.config import load_settings
from training.settings import TrainingConfig, TrainingSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "dropout-risk.example.toml"


def test_example_config_loads_and_states_the_defaults():
    settings = load_settings(TrainingSettings, EXAMPLE)
    defaults = TrainingConfig()
    assert settings.training.model_dump(exclude={"artifact_location", "min_clients_per_fold", "logistic_c",
                                                 "alert_top_fraction"}) == \
        defaults.model_dump(exclude={"artifact_location", "min_clients_per_fold", "logistic_c", "alert_top_fraction"})
    assert "bdi2" in settings.registry()


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_TRAINING__FOLDS", "10")
    assert load_settings(TrainingSettings, EXAMPLE).training.folds == 10


def test_unknown_keys_are_refused(tmp_path):
    (tmp_path / "c.toml").write_text("[training]\nfoldz = 3\n")
    with pytest.raises(ValidationError, match="foldz"):
        load_settings(TrainingSettings, tmp_path / "c.toml")
