"""No look-ahead: the row for session k never depends on anything after session k.

With the spec and trajectories held fixed (as they are when a trained model
scores), changing, deleting or adding sessions after a client's session k must
leave that client's rows 1..k exactly as they were, and leave every other
client's rows alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import fit_expected_trajectories

REG = default_registry()
SPEC = FeatureSpec(
    max_landmark=8,
    off_track_z=1.0,
    instruments=(REG["ors"], REG["srs"], REG["phq9"]),
    numeric_covariates=("age",),
    categorical_covariates={"gender": ("f", "m")},
)
SCORE_COLUMNS = ("ors", "srs", "phq9", "missed_since_last")


def random_scores(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Score columns for n sessions, each missing now and then."""

    def holes(values, p):
        return np.where(rng.random(n) < p, np.nan, values)

    return {
        "ors": holes(np.clip(rng.normal(20, 8, n), 0, 40).round(1), 0.2),
        "srs": holes(np.clip(rng.normal(36, 3, n), 0, 40).round(1), 0.2),
        "phq9": holes(rng.integers(0, 28, n).astype(float), 0.4),
        "missed_since_last": holes(rng.poisson(0.3, n).astype(float), 0.3),
    }


def simulated(seed: int, n_clients: int = 80) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 13, n_clients)
    client = np.repeat(np.arange(n_clients), counts)
    session = np.concatenate([np.arange(1, c + 1) for c in counts])
    gaps = np.where(session == 1, 0, rng.integers(0, 21, len(session)))
    days = np.concatenate([np.cumsum(g) for g in np.split(gaps, np.cumsum(counts)[:-1])])
    start = rng.integers(0, 700, n_clients)[client]
    ids = np.array([f"c{i:03d}" for i in range(n_clients)])
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(ids[client], dtype="string"),
            "session_number": session.astype(np.int64),
            "session_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(start + days, unit="D"),
            **random_scores(rng, len(session)),
        }
    )
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(ids, dtype="string"),
            "status": pd.array(rng.choice(["dropout", "completed", "ongoing"], n_clients), dtype="string"),
            "age": rng.integers(18, 70, n_clients).astype(float),
            "gender": pd.array(rng.choice(["f", "m", "x"], n_clients), dtype="string"),
        }
    )
    return sessions, episodes


def rows_up_to_cut(features: pd.DataFrame, cut: pd.Series) -> pd.DataFrame:
    """Each client's rows with landmark <= that client's cut."""
    limit = features["client_id"].map(cut).to_numpy()
    return features[features["landmark"].to_numpy() <= limit].reset_index(drop=True)


def after_cut(sessions: pd.DataFrame, cut: pd.Series) -> np.ndarray:
    return (sessions["session_number"] > sessions["client_id"].map(cut)).to_numpy()


@pytest.fixture(params=[0, 1, 2])
def world(request):
    sessions, episodes = simulated(request.param)
    trajectories = fit_expected_trajectories(sessions, SPEC)  # fitted once, then held fixed
    rng = np.random.default_rng(100 + request.param)
    n_sessions = sessions.groupby("client_id")["session_number"].max()
    # A cut per client, anywhere from before its first session to past its last.
    cut = pd.Series(rng.integers(0, n_sessions.to_numpy() + 2), index=n_sessions.index)
    base = build_features(sessions, episodes, SPEC, trajectories)
    return sessions, episodes, trajectories, cut, rng, base


def test_curves_are_really_fitted(world):
    # Guard against a vacuous test: the off-track machinery must be live in this data.
    *_, base = world
    assert base["ors_off_track"].notna().any() and base["ors_expected_dev"].abs().max() > 0


def test_deleting_later_sessions_changes_no_earlier_row(world):
    sessions, episodes, trajectories, cut, _, base = world
    kept = sessions[~after_cut(sessions, cut)]
    got = build_features(kept, episodes, SPEC, trajectories)
    tm.assert_frame_equal(rows_up_to_cut(got, cut), rows_up_to_cut(base, cut))
    # and deleting leaves exactly the rows up to the cut
    assert len(got) == len(rows_up_to_cut(base, cut))


def test_changing_later_sessions_changes_no_earlier_row(world):
    sessions, episodes, trajectories, cut, rng, base = world
    later = after_cut(sessions, cut)
    changed = sessions.copy()
    for column, values in random_scores(rng, int(later.sum())).items():
        changed.loc[later, column] = values
    # later sessions may also move later in time (never before the cut session)
    changed.loc[later, "session_date"] += pd.to_timedelta(rng.integers(0, 60, int(later.sum())), unit="D")
    assert not changed.equals(sessions)
    got = build_features(changed, episodes, SPEC, trajectories)
    tm.assert_frame_equal(rows_up_to_cut(got, cut), rows_up_to_cut(base, cut))


def test_each_score_column_alone_is_causal(world):
    # One column at a time, so a leak in one feature family cannot hide behind another.
    sessions, episodes, trajectories, cut, rng, base = world
    later = after_cut(sessions, cut)
    for column in SCORE_COLUMNS:
        changed = sessions.copy()
        changed.loc[later, column] = random_scores(rng, int(later.sum()))[column]
        got = build_features(changed, episodes, SPEC, trajectories)
        tm.assert_frame_equal(rows_up_to_cut(got, cut), rows_up_to_cut(base, cut), obj=column)


def test_adding_later_sessions_changes_no_existing_row(world):
    sessions, episodes, trajectories, _, rng, base = world
    n_sessions = sessions.groupby("client_id")["session_number"].max()
    last_date = sessions.groupby("client_id")["session_date"].max()
    extra_counts = rng.integers(1, 4, len(n_sessions))
    client = np.repeat(n_sessions.index.to_numpy(), extra_counts)
    step = np.concatenate([np.arange(1, c + 1) for c in extra_counts])
    extra = pd.DataFrame(
        {
            "client_id": pd.array(client, dtype="string"),
            "session_number": (n_sessions.reindex(client).to_numpy() + step).astype(np.int64),
            "session_date": last_date.reindex(client).to_numpy() + pd.to_timedelta(7 * step, unit="D"),
            **random_scores(rng, len(client)),
        }
    )
    got = build_features(pd.concat([sessions, extra], ignore_index=True), episodes, SPEC, trajectories)
    tm.assert_frame_equal(rows_up_to_cut(got, n_sessions), base)
    assert len(got) > len(base)  # the new sessions <= max_landmark did get rows


def test_a_change_before_the_cut_is_detected(world):
    # The comparison can fail: altering one score at or before the cut shows up.
    sessions, episodes, trajectories, cut, _, base = world
    target = np.flatnonzero(
        ~after_cut(sessions, cut)
        & sessions["ors"].notna().to_numpy()
        & (sessions["session_number"] <= SPEC.max_landmark).to_numpy()
    )[0]
    changed = sessions.copy()
    changed.loc[target, "ors"] = 40.0 - changed.loc[target, "ors"] + 0.5
    got = build_features(changed, episodes, SPEC, trajectories)
    with pytest.raises(AssertionError):
        tm.assert_frame_equal(rows_up_to_cut(got, cut), rows_up_to_cut(base, cut))
