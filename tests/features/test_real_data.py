"""The real antidepressant trial (HAM-D17, no alliance measure) goes through unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import infer_spec
from dropout_risk.training.data import load_contract


def test_trial_validates_and_builds_features_without_special_casing(trial_dir: Path):
    registry = default_registry()
    data = load_contract(trial_dir / "sessions.csv", trial_dir / "episodes.csv", registry)
    assert data.ok, data.problems
    spec = infer_spec(data.sessions, data.episodes, registry, FeatureConfig())
    assert [i.key for i in spec.instruments] == ["hamd17", "hama"]
    groups = spec.groups()
    assert groups["alliance"] == []
    assert "arm" in spec.categorical_covariates and "gender" in spec.categorical_covariates

    table = build_features(data.sessions, data.episodes, spec)
    assert len(table) == len(data.sessions) == 780  # at most 5 visits each, all within 8 landmarks
    assert table.groupby("client_id").size().max() == 5
    assert set(table["label"].unique()) == {0.0, 1.0}
    assert table.loc[table["status"] == "dropout", "client_id"].nunique() == 43
    first = table[table["landmark"] == 1]
    # HAM-A was not recorded at baseline: missing, not zero.
    assert first["hama_current"].isna().all()
    assert first["hamd17_current"].notna().all()
    later = table[table["landmark"] == 3]
    hamd_change = later["hamd17_change_intake"].to_numpy()
    assert np.isfinite(hamd_change).all()
    # Normalised so higher = better: a falling HAM-D is a positive change.
    raw = data.sessions.pivot(index="client_id", columns="session_number", values="hamd17")
    expected = (raw[1] - raw[3]).loc[later["client_id"]].to_numpy()
    np.testing.assert_allclose(hamd_change, expected)
