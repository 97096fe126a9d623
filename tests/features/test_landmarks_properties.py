"""Property tests of build_features over random valid session histories.

Besides the invariants, every generated history is checked against a plain,
slow, per-row reference written straight from the feature definitions: the
vectorised builder must agree with it to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandas.testing as tm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import ALLIANCE_SUFFIXES, OUTCOME_SUFFIXES, FeatureSpec
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories

REG = default_registry()
MAX_LANDMARK = 6
SPEC = FeatureSpec(
    max_landmark=MAX_LANDMARK,
    off_track_z=1.0,
    instruments=(REG["ors"], REG["srs"], REG["phq9"], REG["wai_sr"]),  # wai_sr: no cutoff, no reliable change
    numeric_covariates=("age",),
    categorical_covariates={"gender": ("f", "m")},
)
TRAJECTORIES = ExpectedTrajectories(
    {
        "ors": Curve(intercept=(0, 2, 3, 4, 5, 6), slope=(1, 0.95, 0.9, 0.9, 0.85, 0.85), resid_sd=(0, 2, 3, 3, 4, 4)),
        "phq9": Curve(intercept=(0, 1, 2, 2.5, 3, 3.5), slope=(1, 1, 1, 1, 1, 1), resid_sd=(0, 1, 1.5, 2, 2, 2)),
    }
)
INSTRUMENT_KEYS = [i.key for i in SPEC.instruments]
NAN = float("nan")

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def maybe(strategy, p_missing_weight: int = 1):
    return st.one_of(*[st.just(NAN)] * p_missing_weight, strategy, strategy)


def tenths(low: int, high: int):
    return st.integers(low * 10, high * 10).map(lambda v: v / 10)


@st.composite
def histories(draw, max_clients: int = 4, max_sessions: int = 9):
    """Valid (sessions, episodes): sessions numbered 1..n per client, dates never going back."""
    ids = draw(st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=max_clients, unique=True))
    rows = []
    for client in ids:
        n = draw(st.integers(1, max_sessions))
        day = draw(st.integers(0, 400))
        for k in range(1, n + 1):
            if k > 1:
                day += draw(st.integers(0, 30))
            rows.append(
                {
                    "client_id": client,
                    "session_number": k,
                    "session_date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=day),
                    "missed_since_last": draw(maybe(st.integers(0, 3).map(float))),
                    "ors": draw(maybe(tenths(0, 40))),
                    "srs": draw(maybe(tenths(0, 40))),
                    "phq9": draw(maybe(st.integers(0, 27).map(float), 2)),
                    "wai_sr": draw(maybe(st.integers(12, 60).map(float))),
                }
            )
    sessions = pd.DataFrame(rows)
    sessions["client_id"] = sessions["client_id"].astype("string")
    sessions["session_number"] = sessions["session_number"].astype("int64")
    episodes = pd.DataFrame(
        {
            "client_id": pd.array(ids, dtype="string"),
            "status": pd.array(
                [draw(st.sampled_from(["dropout", "completed", "ongoing"])) for _ in ids], dtype="string"
            ),
            "age": [draw(maybe(st.integers(16, 90).map(float))) for _ in ids],
            "gender": pd.array([draw(st.sampled_from(["f", "m", "x", None])) for _ in ids], dtype="string"),
        }
    )
    # Hand the rows over in a random order: the builder must not rely on the caller's sort.
    order = draw(st.permutations(range(len(sessions))))
    return sessions.iloc[list(order)].reset_index(drop=True), episodes


def build(sessions, episodes):
    return build_features(sessions, episodes, SPEC, TRAJECTORIES)


def by_client(sessions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    ordered = sessions.sort_values(["client_id", "session_number"])
    return {str(c): g.reset_index(drop=True) for c, g in ordered.groupby("client_id", sort=True)}


# --- the slow reference -----------------------------------------------------------------------


def flag(condition: bool | None) -> float:
    return NAN if condition is None else float(condition)


def reference_instrument(instrument, history: pd.DataFrame, k: int) -> dict[str, float]:
    raw = history[instrument.key].to_numpy(dtype=float)
    norm = instrument.normalise(raw)
    obs = [
        (int(s), float(v), float(r))
        for s, v, r in zip(history["session_number"], norm, raw, strict=True)
        if not math.isnan(v)
    ]
    key, rc = instrument.key, instrument.reliable_change
    suffixes = OUTCOME_SUFFIXES if instrument.role == "outcome" else ALLIANCE_SUFFIXES
    out = {f"{key}_{s}": NAN for s in suffixes}
    if not obs:
        return out
    values = [v for _, v, _ in obs]
    first, current, last_session = values[0], values[-1], obs[-1][0]
    two = len(obs) >= 2
    change = current - first if two else NAN
    change_last = values[-1] - values[-2] if two else NAN
    if instrument.role == "outcome":
        expected, sd = (
            TRAJECTORIES.expected(key, np.array([first]), np.array([last_session]))
            if key in TRAJECTORIES
            else (np.array([NAN]), np.array([NAN]))
        )
        dev = current - float(expected[0])
        sessions = [s for s, _, _ in obs]
        out.update(
            {
                f"{key}_intake": first,
                f"{key}_current": current,
                f"{key}_sessions_since_obs": float(k - last_session),
                f"{key}_change_intake": change,
                f"{key}_change_last": change_last,
                f"{key}_slope": float(np.polyfit(sessions, values, 1)[0]) if two else NAN,
                f"{key}_reliable_improvement": flag(change >= rc - 1e-9 if two and rc else None),
                f"{key}_reliable_deterioration": flag(change <= -rc + 1e-9 if two and rc else None),
                f"{key}_dist_cutoff": (
                    current - instrument.normalise(instrument.cutoff) if instrument.cutoff is not None else NAN
                ),
                f"{key}_expected_dev": dev,
                f"{key}_off_track": flag(
                    dev < -SPEC.off_track_z * float(sd[0])
                    if not math.isnan(dev) and not math.isnan(float(sd[0]))
                    else None
                ),
            }
        )
    else:
        drops = [a - b for a, b in zip(values, values[1:], strict=False)]
        threshold = (lambda d: d >= rc - 1e-9) if rc is not None else (lambda d: d > 0)
        out.update(
            {
                f"{key}_current": current,
                f"{key}_min": min(values),
                f"{key}_mean": sum(values) / len(values),
                f"{key}_change_first": change,
                f"{key}_change_last": change_last,
                f"{key}_n_below_cutoff": (
                    float(sum(bool(instrument.is_clinical(r)) for _, _, r in obs))
                    if instrument.cutoff is not None
                    else NAN
                ),
                f"{key}_any_drop": flag(any(threshold(d) for d in drops) if two else None),
            }
        )
    return out


def reference_row(history: pd.DataFrame, k: int, episode: pd.Series | None) -> dict[str, object]:
    upto = history[history["session_number"] <= k]
    dates = upto["session_date"]
    days = (dates.iloc[-1] - dates.iloc[0]) / pd.Timedelta(days=1)
    missed = [m for m in upto["missed_since_last"] if not math.isnan(m)]
    row: dict[str, object] = {
        "client_id": str(history["client_id"].iloc[0]),
        "landmark": k,
        "session_date": dates.iloc[-1],
        "status": episode["status"] if episode is not None else pd.NA,
        "label": {"dropout": 1.0, "completed": 0.0}.get(episode["status"], NAN) if episode is not None else NAN,
        "days_in_treatment": days,
        "mean_gap_days": days / (k - 1) if k > 1 else NAN,
        "last_gap_days": (dates.iloc[-1] - dates.iloc[-2]) / pd.Timedelta(days=1) if len(upto) > 1 else NAN,
        "missed_total": float(sum(missed)) if missed else NAN,
        "missed_last": float(upto["missed_since_last"].iloc[-1]),
    }
    for instrument in SPEC.instruments:
        row.update(reference_instrument(instrument, upto, k))
    gender = episode["gender"] if episode is not None else None
    row["age"] = float(episode["age"]) if episode is not None else NAN
    row["gender"] = gender if isinstance(gender, str) and gender in ("f", "m") else NAN
    return row


def reference(sessions: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    episode_of = {str(r["client_id"]): r for _, r in episodes.iterrows()}
    rows = [
        reference_row(history, k, episode_of.get(client))
        for client, history in by_client(sessions).items()
        for k in history["session_number"]
        if k <= MAX_LANDMARK
    ]
    frame = pd.DataFrame(
        rows, columns=["client_id", "landmark", "session_date", "status", "label", *SPEC.feature_columns()[1:]]
    )
    frame["client_id"] = frame["client_id"].astype("string")
    frame["status"] = frame["status"].astype("string")
    frame["landmark"] = frame["landmark"].astype("int64")
    frame["session_date"] = frame["session_date"].astype(sessions["session_date"].dtype)
    for column in frame.columns[5:-1]:
        frame[column] = frame[column].astype(float)
    frame["gender"] = pd.Categorical(frame["gender"], categories=pd.Index(["f", "m"], dtype=str))
    return frame


# --- properties -------------------------------------------------------------------------------


@FAST
@given(histories())
def test_matches_the_per_row_reference(data):
    sessions, episodes = data
    tm.assert_frame_equal(
        build(sessions, episodes), reference(sessions, episodes), check_exact=False, rtol=1e-9, atol=1e-9
    )


@FAST
@given(histories())
def test_one_row_per_session_up_to_max_landmark_sorted_with_all_spec_columns(data):
    sessions, episodes = data
    got = build(sessions, episodes)
    assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0
    expected = sorted(
        (str(c), int(k))
        for c, k in zip(sessions["client_id"], sessions["session_number"], strict=True)
        if k <= MAX_LANDMARK
    )
    assert list(zip(got["client_id"].astype(str), got["landmark"], strict=True)) == expected
    assert list(got.columns) == [
        "client_id",
        "landmark",
        "session_date",
        "status",
        "label",
        *SPEC.feature_columns()[1:],
    ]


@FAST
@given(histories(), st.randoms(use_true_random=False))
def test_permuting_input_rows_changes_nothing(data, rnd):
    sessions, episodes = data
    order = list(range(len(sessions)))
    rnd.shuffle(order)
    episode_order = list(range(len(episodes)))
    rnd.shuffle(episode_order)
    tm.assert_frame_equal(build(sessions, episodes), build(sessions.iloc[order], episodes.iloc[episode_order]))


@FAST
@given(histories())
def test_nan_exactly_when_no_observation_yet(data):
    sessions, episodes = data
    got = build(sessions, episodes)
    ordered = sessions.sort_values(["client_id", "session_number"])
    ordered = ordered[ordered["session_number"] <= MAX_LANDMARK].reset_index(drop=True)
    for key in INSTRUMENT_KEYS:
        seen = ordered[key].notna().groupby(ordered["client_id"]).cummax().to_numpy()
        np.testing.assert_array_equal(got[f"{key}_current"].notna().to_numpy(), seen, err_msg=key)
        always = (
            ["current", "intake", "sessions_since_obs", "dist_cutoff", "expected_dev", "off_track"]
            if key in ("ors", "phq9")
            else ["current", "min", "mean", "n_below_cutoff"]
        )
        for suffix in always:
            column = f"{key}_{suffix}"
            if key == "wai_sr" and suffix == "n_below_cutoff":
                assert got[column].isna().all()  # no cutoff: never computable
                continue
            np.testing.assert_array_equal(got[column].notna().to_numpy(), seen, err_msg=column)


@FAST
@given(histories())
def test_running_invariants(data):
    sessions, episodes = data
    got = build(sessions, episodes)
    for key in ("ors", "phq9"):  # intake: fixed once known, and known from then on
        for _, rows in got.groupby("client_id")[f"{key}_intake"]:
            assert rows.dropna().nunique() <= 1
            assert (np.diff(rows.notna().to_numpy().astype(int)) >= 0).all()
    running_max = {}
    ordered = sessions.sort_values(["client_id", "session_number"])
    ordered = ordered[ordered["session_number"] <= MAX_LANDMARK].reset_index(drop=True)
    for key in ("srs", "wai_sr"):
        running_max[key] = ordered[key].fillna(-np.inf).groupby(ordered["client_id"]).cummax().to_numpy()
        seen = got[f"{key}_current"].notna().to_numpy()
        lo, mean, cur = (got[f"{key}_{s}"].to_numpy()[seen] for s in ("min", "mean", "current"))
        hi = running_max[key][seen]
        assert (lo <= mean + 1e-9).all() and (mean <= hi + 1e-9).all()
        assert (lo <= cur).all() and (cur <= hi).all()
        n_obs = ordered[key].notna().groupby(ordered["client_id"]).cumsum().to_numpy()
        assert (got[f"{key}_n_below_cutoff"].fillna(0).to_numpy() <= n_obs).all()
    for key in ("ors", "phq9"):
        instrument = REG[key]
        for suffix in ("intake", "current"):
            values = got[f"{key}_{suffix}"].dropna()
            assert values.between(instrument.min, instrument.max).all()
        flags = got[[f"{key}_reliable_improvement", f"{key}_reliable_deterioration", f"{key}_off_track"]]
        assert flags.isin([0.0, 1.0]).to_numpy()[flags.notna().to_numpy()].all()


@st.composite
def linear_histories(draw):
    """One client whose ORS and PHQ-9 fall exactly on lines, observed at >= 2 random sessions."""
    n = draw(st.integers(2, MAX_LANDMARK))
    a, b = draw(st.integers(0, 10)), draw(st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.5, 3.0]))
    seen = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda s: sum(s) >= 2))
    k = np.arange(1, n + 1)
    ors = np.where(seen, 20 + a + b * k, np.nan)
    phq9 = np.where(seen, 5 + a + b * k, np.nan)  # raw rises by b, normalised (27 - raw) falls by b
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["a"] * n, dtype="string"),
            "session_number": k.astype(np.int64),
            "session_date": pd.date_range("2024-01-01", periods=n, freq="7D"),
            "ors": ors,
            "phq9": phq9,
        }
    )
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a"], dtype="string"), "status": pd.array(["completed"], dtype="string")}
    )
    return sessions, episodes, b, np.asarray(seen)


@FAST
@given(linear_histories())
def test_slope_of_an_exactly_linear_series_is_its_slope(data):
    sessions, episodes, b, seen = data
    got = build(sessions, episodes)
    n_obs = np.cumsum(seen)
    ready = n_obs >= 2
    np.testing.assert_allclose(got["ors_slope"].to_numpy()[ready], b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["phq9_slope"].to_numpy()[ready], -b, rtol=0, atol=1e-9)
    assert got["ors_slope"][~ready].isna().all()
