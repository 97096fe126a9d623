"""The service's one-client path equals the batch feature builder, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import validate_contract
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import ClientHistory, build_features, client_features
from dropout_risk.features.spec import infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories


def history_of(sessions: pd.DataFrame, covariates: dict) -> ClientHistory:
    return ClientHistory(
        session_number=sessions["session_number"].to_numpy(dtype=np.int64),
        date_ns=sessions["session_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
        missed=sessions["missed_since_last"].to_numpy(dtype=float),
        scores={
            c: sessions[c].to_numpy(dtype=float)
            for c in sessions.columns
            if c not in ("client_id", "session_number", "session_date", "missed_since_last")
        },
        covariates=covariates,
    )


def batch_matrix(rows: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for column in columns:
        values = rows[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy(dtype=float)
            out[column] = np.where(codes < 0, np.nan, codes)
        else:
            out[column] = values.to_numpy(dtype=float)
    return out


@pytest.mark.parametrize(
    ("outcome", "alliance", "max_landmark"), [("ors", "srs", 8), ("phq9", "wai_sr", 5), ("core10", "none", 12)]
)
def test_every_client_matches_the_batch_rows(cohorts, outcome, alliance, max_landmark):
    cohort = cohorts.simulate(150, seed=3, outcome=outcome, alliance=alliance)
    data = validate_contract(cohort.sessions, cohort.episodes, default_registry())
    assert data.ok
    episodes = data.episodes.copy()
    episodes.loc[::7, "gender"] = None  # missing categorical
    episodes.loc[1::9, "gender"] = "unseen"  # a level the spec will not know
    episodes.loc[::11, "age"] = np.nan
    spec = infer_spec(data.sessions, data.episodes, default_registry(), FeatureConfig(max_landmark=max_landmark))
    trajectories = fit_expected_trajectories(data.sessions, spec)
    batch = build_features(data.sessions, episodes, spec, trajectories)
    columns = spec.feature_columns()
    covariate_names = [*spec.numeric_covariates, *spec.categorical_covariates]
    for client_id, sessions in data.sessions.groupby("client_id", sort=True):
        episode = episodes[episodes["client_id"] == client_id].iloc[0]
        covariates = {name: (None if pd.isna(episode[name]) else episode[name]) for name in covariate_names}
        fast = client_features(history_of(sessions, covariates), spec, trajectories)
        expected = batch_matrix(batch[batch["client_id"] == client_id], columns)
        assert list(fast) == columns
        for column in columns:
            np.testing.assert_array_equal(fast[column], expected[column], err_msg=column)
