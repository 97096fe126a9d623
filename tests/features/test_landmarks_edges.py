"""Edges of the landmark table's layout the hand-worked clinic does not reach."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories

nan = np.nan
REG = default_registry()
SPEC = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"],), numeric_covariates=("age",))


def sessions_of(*clients: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.array(list(clients), dtype="string"),
            "session_number": np.ones(len(clients), dtype=np.int64),
            "session_date": pd.to_datetime(["2024-01-01"] * len(clients)),
            "ors": np.full(len(clients), 20.0),
        }
    )


def test_a_client_without_an_episode_beside_the_only_episode_row_gets_nan_episode_values():
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a"], dtype="string"), "status": pd.array(["dropout"], dtype="string"), "age": [40.0]}
    )
    got = build_features(sessions_of("a", "b"), episodes, SPEC, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["label"], [1.0, nan])
    np.testing.assert_array_equal(got["age"], [40.0, nan])
    assert got["status"].iloc[0] == "dropout" and pd.isna(got["status"].iloc[1])
