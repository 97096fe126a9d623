"""The promotion gate on a real registry: first promotion, rejection, forced rollback, logging."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from dropout_risk.models.registry import CHAMPION, MODEL_NAME, version_for_alias
from dropout_risk.training.promote import PromotionError, judge, promote
from dropout_risk.training.settings import GateConfig
from dropout_risk.training.train import train
from tests.support.training import settings_for


def test_judge_bounds():
    gate = GateConfig()
    good = {"roc_auc": 0.70, "calibration_slope": 1.0, "ece": 0.02}
    assert judge(good, None, gate) == []
    assert judge(good, {"roc_auc": 0.709}, gate) == []
    assert judge(good, {"roc_auc": 0.711}, gate)[0].startswith("AUC 0.700 is more than 0.01 below")
    assert judge({**good, "calibration_slope": 0.79}, None, gate) == ["calibration slope 0.790 outside 0.8-1.2"]
    assert judge({**good, "calibration_slope": 1.21}, None, gate) == ["calibration slope 1.210 outside 0.8-1.2"]
    assert judge({**good, "ece": 0.051}, None, gate) == ["ECE 0.051 above 0.05"]
    assert len(judge({**good, "ece": float("nan")}, None, gate)) == 1  # unknown calibration never passes


def test_gate_promotes_rejects_and_rolls_back(mlflow_store, cohorts):
    settings = settings_for(mlflow_store)
    good = cohorts.files(2500, seed=11)
    first = train(good["sessions"], good["episodes"], settings)
    decision = promote(settings)
    assert decision.promoted and decision.champion_version is None
    assert str(version_for_alias(CHAMPION).version) == first.model_version == "1"

    # Same clients, but a challenger that may only see age and gender: clearly worse.
    weak = settings_for(mlflow_store, feature_groups=["covariates"])
    second = train(good["sessions"], good["episodes"], weak)
    decision = promote(settings)
    assert not decision.promoted
    assert any("below the champion" in r for r in decision.reasons)
    assert decision.champion["n_clients"] == decision.challenger["n_clients"] == 475  # same test clients
    assert str(version_for_alias(CHAMPION).version) == "1"

    with pytest.raises(PromotionError, match="needs --reason"):
        promote(settings, version=second.model_version, force=True)
    forced = promote(settings, version=second.model_version, force=True, reason="rollback drill")
    assert forced.promoted and forced.forced
    assert str(version_for_alias(CHAMPION).version) == "2"
    with pytest.raises(PromotionError, match="already the champion"):
        promote(settings, version="2")
    with pytest.raises(PromotionError, match="no version 9"):
        promote(settings, version="9")

    client = MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name(settings.training.experiment).experiment_id],
        filter_string="tags.kind = 'promotion'",
    )
    assert len(runs) == 3
    reasons = {r.data.tags.get("reason") for r in runs}
    assert "rollback drill" in reasons
    rejected = [r for r in runs if r.data.tags["promoted"] == "False"]
    assert len(rejected) == 1 and "challenger_roc_auc" in rejected[0].data.metrics
    assert "champion_roc_auc" in rejected[0].data.metrics
    assert client.get_model_version(MODEL_NAME, "2").tags["gate"] == "promoted"
