"""Expected-treatment-response curves: fitting, borrowing for sparse sessions, lookup, JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import MIN_CLIENTS, Curve, ExpectedTrajectories, fit_expected_trajectories

REG = default_registry()
nan = np.nan

# Truth for the synthetic clinic: at session k, ORS = A[k] + B[k] * intake + N(0, S[k]).
A = {2: 4.0, 3: 6.0, 4: 8.0}
B = {2: 0.9, 3: 0.8, 4: 0.7}
S = {2: 1.0, 3: 2.0, 4: 3.0}


def spec(*keys: str, max_landmark: int = 4) -> FeatureSpec:
    return FeatureSpec(max_landmark=max_landmark, off_track_z=1.0, instruments=tuple(REG[k] for k in keys))


def linear_clinic(n_clients: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    intake = rng.normal(19, 7, n_clients)
    rows = []
    for k in range(1, 6):  # session 5 lies past max_landmark = 4 and must be ignored
        score = intake if k == 1 else A.get(k, 0) + B.get(k, 0) * intake + rng.normal(0, S.get(k, 50), n_clients)
        rows.append(
            pd.DataFrame(
                {
                    "client_id": [f"c{i}" for i in range(n_clients)],
                    "session_number": k,
                    "session_date": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=k),
                    "ors": score,
                }
            )
        )
    sessions = pd.concat(rows, ignore_index=True)
    sessions["client_id"] = sessions["client_id"].astype("string")
    return sessions.sample(frac=1.0, random_state=1)  # unsorted on purpose


def test_recovers_known_lines():
    curve = fit_expected_trajectories(linear_clinic(), spec("ors")).curves["ors"]
    assert len(curve.intercept) == 4
    for k in (2, 3, 4):
        assert curve.slope[k - 1] == pytest.approx(B[k], abs=0.03)
        assert curve.intercept[k - 1] == pytest.approx(A[k], abs=0.7)
        assert curve.resid_sd[k - 1] == pytest.approx(S[k], rel=0.06)
    assert curve.n_clients == (2000, 2000, 2000, 2000)


def test_session_one_is_the_identity_line_exactly():
    curve = fit_expected_trajectories(linear_clinic(), spec("ors")).curves["ors"]
    assert (curve.intercept[0], curve.slope[0], curve.resid_sd[0]) == (0.0, 1.0, 0.0)


def test_intake_is_first_observed_score_and_missing_scores_are_skipped():
    # Half the clients miss session 1: their intake is their session-2 score, so at k = 2
    # those clients sit exactly on y = x, the others on y = 2 + x; the fit must see the mixture.
    n = 40
    ids = [f"c{i:02d}" for i in range(n)]
    intake = np.repeat(np.linspace(5, 35, n // 2), 2)  # each intake once per group: offset and x uncorrelated
    missing_first = np.arange(n) % 2 == 0
    s1 = np.where(missing_first, nan, intake)
    s2 = np.where(missing_first, intake, intake + 2)
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(ids * 2, dtype="string"),
            "session_number": [1] * n + [2] * n,
            "session_date": pd.Timestamp("2024-01-01"),
            "ors": np.concatenate([s1, s2]),
        }
    )
    curve = fit_expected_trajectories(sessions, spec("ors", max_landmark=2)).curves["ors"]
    assert curve.n_clients == (20, 40)
    assert curve.slope[1] == pytest.approx(1.0)
    assert curve.intercept[1] == pytest.approx(1.0)  # mean of the two offsets 0 and 2
    assert curve.resid_sd[1] == pytest.approx(np.sqrt(40 * 1.0 / 38))


def test_sparse_sessions_reuse_the_nearest_fitted_session_below():
    sessions = linear_clinic(n_clients=200)
    # Only MIN_CLIENTS - 1 clients reach session 4: k = 4 borrows k = 3's line.
    keep = (sessions["session_number"] < 4) | sessions["client_id"].isin([f"c{i}" for i in range(MIN_CLIENTS - 1)])
    curve = fit_expected_trajectories(sessions[keep], spec("ors")).curves["ors"]
    assert curve.n_clients[3] == MIN_CLIENTS - 1
    assert (curve.intercept[3], curve.slope[3], curve.resid_sd[3]) == (
        curve.intercept[2],
        curve.slope[2],
        curve.resid_sd[2],
    )
    # exactly MIN_CLIENTS is enough for a fit of its own
    keep = (sessions["session_number"] < 4) | sessions["client_id"].isin([f"c{i}" for i in range(MIN_CLIENTS)])
    curve = fit_expected_trajectories(sessions[keep], spec("ors")).curves["ors"]
    assert curve.slope[3] != curve.slope[2]


def test_a_sparse_start_borrows_from_above():
    sessions = linear_clinic(n_clients=50)
    first = sessions["session_number"] == 1
    sessions.loc[first & ~sessions["client_id"].isin(["c1", "c2"]), "ors"] = nan
    curve = fit_expected_trajectories(sessions, spec("ors")).curves["ors"]
    assert curve.n_clients[0] == 2
    assert (curve.intercept[0], curve.slope[0], curve.resid_sd[0]) == (
        curve.intercept[1],
        curve.slope[1],
        curve.resid_sd[1],
    )


def test_lower_is_better_scales_are_fitted_on_normalised_scores():
    # Raw PHQ-9 falls by 3 from intake to session 2: normalised (27 - raw) it rises by 3.
    n = 30
    raw_intake = np.arange(n) % 20 + 5.0
    sessions = pd.DataFrame(
        {
            "client_id": pd.array([f"c{i}" for i in range(n)] * 2, dtype="string"),
            "session_number": [1] * n + [2] * n,
            "session_date": pd.Timestamp("2024-01-01"),
            "phq9": np.concatenate([raw_intake, raw_intake - 3]),
        }
    )
    curve = fit_expected_trajectories(sessions, spec("phq9", max_landmark=2)).curves["phq9"]
    assert curve.slope[1] == pytest.approx(1.0)
    assert curve.intercept[1] == pytest.approx(3.0)
    assert curve.resid_sd[1] == pytest.approx(0.0, abs=1e-9)


def test_instrument_without_data_gets_a_nan_curve():
    sessions = linear_clinic(n_clients=20)
    fitted = fit_expected_trajectories(sessions, spec("ors", "phq9"))
    assert "phq9" in fitted and np.isnan(fitted.curves["phq9"].intercept).all()
    sessions["phq9"] = nan
    assert np.isnan(fit_expected_trajectories(sessions, spec("ors", "phq9")).curves["phq9"].slope).all()


def test_alliance_instruments_get_no_curve():
    sessions = linear_clinic(n_clients=20).assign(srs=36.0)
    assert set(fit_expected_trajectories(sessions, spec("ors", "srs")).curves) == {"ors"}


def test_expected_lookup_clips_sessions_and_propagates_nan():
    trajectories = ExpectedTrajectories({"ors": Curve(intercept=(0, 2, 4), slope=(1, 0.5, 0.25), resid_sd=(0, 1, 2))})
    mean, sd = trajectories.expected("ors", np.array([10.0, 10.0, 10.0, nan, 8.0]), np.array([1, 2, 7, 2, nan]))
    np.testing.assert_array_equal(mean, [10.0, 7.0, 6.5, nan, nan])  # session 7 uses k = 3's line
    np.testing.assert_array_equal(sd, [0.0, 1.0, 2.0, 1.0, nan])
    with pytest.raises(KeyError):
        trajectories.expected("phq9", np.array([1.0]), np.array([1]))


def test_round_trip_through_json():
    fitted = fit_expected_trajectories(linear_clinic(n_clients=50).assign(phq9=nan), spec("ors", "phq9"))
    text = json.dumps(fitted.to_dict(), allow_nan=False)  # NaN is stored as null: strict JSON
    again = ExpectedTrajectories.from_dict(json.loads(text))
    assert again.to_dict() == fitted.to_dict()
    assert np.isnan(again.curves["phq9"].intercept).all()
    intake, session = np.array([12.0, 20.0]), np.array([2, 4])
    for got, want in zip(again.expected("ors", intake, session), fitted.expected("ors", intake, session), strict=True):
        np.testing.assert_array_equal(got, want)


def test_curve_lengths_must_agree():
    with pytest.raises(ValueError):
        Curve(intercept=(0, 1), slope=(1,), resid_sd=(0, 1))


def _two_sessions(intake: np.ndarray, second: np.ndarray) -> pd.DataFrame:
    n = len(intake)
    return pd.DataFrame(
        {
            "client_id": pd.array([f"c{i:02d}" for i in range(n)] * 2, dtype="string"),
            "session_number": [1] * n + [2] * n,
            "session_date": pd.Timestamp("2024-01-01"),
            "ors": np.concatenate([intake, second]),
        }
    )


def test_clients_exactly_on_a_line_have_a_residual_sd_of_zero_not_nan():
    # Rounding leaves these sums a hair below zero (-6e-14): the SD must be 0, not the square root of it.
    x = np.round(np.random.default_rng(1).uniform(5, 35, 12), 1)
    curve = fit_expected_trajectories(_two_sessions(x, 3 + 0.7 * x), spec("ors", max_landmark=2)).curves["ors"]
    assert curve.slope[1] == pytest.approx(0.7) and curve.resid_sd[1] == 0.0


def test_a_session_whose_clients_share_one_intake_borrows_and_a_small_spread_is_fitted():
    # k = 2 has clients enough, but all with intake 20: no line to fit there, so k = 2 borrows k = 1's.
    intake = np.concatenate([np.linspace(5, 35, 10), np.full(6, 20.0)])
    sessions = _two_sessions(intake, intake + 3)
    sessions = sessions[
        (sessions["session_number"] == 1) | sessions["client_id"].isin([f"c{i}" for i in range(10, 16)])
    ]
    curve = fit_expected_trajectories(sessions, spec("ors", max_landmark=2)).curves["ors"]
    assert curve.n_clients == (16, 6) and (curve.intercept[1], curve.slope[1], curve.resid_sd[1]) == (0.0, 1.0, 0.0)
    small = 20 + np.linspace(0, 0.3, 10)  # intakes 0.03 apart: a line of its own, slope 2
    curve = fit_expected_trajectories(_two_sessions(small, 2 * small), spec("ors", max_landmark=2)).curves["ors"]
    assert curve.slope[1] == pytest.approx(2.0) and curve.intercept[1] == pytest.approx(0, abs=1e-9)


def test_a_session_nobody_reached_borrows_and_counts_no_clients():
    sessions = linear_clinic(n_clients=50)
    curve = fit_expected_trajectories(sessions[sessions["session_number"] < 4], spec("ors")).curves["ors"]
    assert len(curve.intercept) == 4 and curve.n_clients == (50, 50, 50, 0)
    assert (curve.intercept[3], curve.slope[3], curve.resid_sd[3]) == (
        curve.intercept[2],
        curve.slope[2],
        curve.resid_sd[2],
    )


def test_an_unfitted_curve_is_nan_throughout_and_counts_no_clients():
    curve = fit_expected_trajectories(linear_clinic(n_clients=20), spec("ors", "phq9")).curves["phq9"]
    assert all(np.isnan(v).all() for v in (curve.intercept, curve.slope, curve.resid_sd))
    assert curve.n_clients == (0, 0, 0, 0)


def test_a_one_session_model_has_one_point_curves():
    curve = fit_expected_trajectories(linear_clinic(n_clients=20), spec("ors", max_landmark=1)).curves["ors"]
    assert (curve.intercept, curve.slope, curve.resid_sd) == ((0.0,), (1.0,), (0.0,))


def test_a_curve_refuses_unequal_or_empty_parts_and_stores_plain_numbers():
    for parts in [((0, 1), (1,), (0, 1)), ((), (), ())]:
        with pytest.raises(
            ValueError, match="^a trajectory curve needs intercept, slope and resid_sd of the same, non-zero length$"
        ):
            Curve(*parts)
    curve = Curve(intercept=np.array([1]), slope=np.array([0.5]), resid_sd=np.array([2]), n_clients=np.array([7]))
    assert curve.n_clients == (7,) and curve.intercept == (1.0,)
    assert json.loads(json.dumps(curve.to_dict())) == {
        "intercept": [1.0],
        "slope": [0.5],
        "resid_sd": [2.0],
        "n_clients": [7],
    }


def test_stored_curves_carry_their_format_and_other_formats_are_refused():
    stored = ExpectedTrajectories({"ors": Curve((0.0,), (1.0,), (0.0,), (3,))}).to_dict()
    assert stored["format"] == 1
    with pytest.raises(ValueError, match=r"^trajectories format 2 is not supported \(expected 1\)$"):
        ExpectedTrajectories.from_dict({**stored, "format": 2})
    # Curves stored before the format and the client counts were recorded still load.
    older = {"curves": {"ors": {"intercept": [0.0], "slope": [1.0], "resid_sd": [0.0]}}}
    assert ExpectedTrajectories.from_dict(older).curves["ors"] == Curve((0.0,), (1.0,), (0.0,))


def test_a_session_number_below_one_reads_the_first_line():
    trajectories = ExpectedTrajectories({"ors": Curve(intercept=(0, 2, 4), slope=(1, 0.5, 0.25), resid_sd=(0, 1, 2))})
    mean, sd = trajectories.expected("ors", np.array([10.0, 10.0]), np.array([0, -1]))
    np.testing.assert_array_equal(mean, [10.0, 10.0])  # never the last line (an index of -1)
    np.testing.assert_array_equal(sd, [0.0, 0.0])
