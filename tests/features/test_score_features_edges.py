"""Edges of the score features the hand-worked clinic does not reach.

Scales without a reliable change, the reliable-change thresholds at exactly their
rounding allowance, and features that are not computable yet: those must be NaN
without numpy warning about a division by zero on every first session.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from dropout_risk.features.instruments import Instrument, default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.score_features import ROUNDING_TOLERANCE
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import Curve, ExpectedTrajectories

nan = np.nan
REG = default_registry()


def one_client(scores: dict[str, list[float]], missed: list[float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(next(iter(scores.values())))
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["a"] * n, dtype="string"),
            "session_number": np.arange(1, n + 1, dtype=np.int64),
            "session_date": pd.date_range("2024-01-01", periods=n, freq="7D"),
            "missed_since_last": missed if missed is not None else [nan] * n,
            **{key: np.asarray(values, dtype=float) for key, values in scores.items()},
        }
    )
    episodes = pd.DataFrame(
        {"client_id": pd.array(["a"], dtype="string"), "status": pd.array(["ongoing"], dtype="string")}
    )
    return sessions, episodes


def features(
    scores: dict[str, list[float]], *instruments: str | Instrument, trajectories: ExpectedTrajectories | None = None
) -> pd.DataFrame:
    sessions, episodes = one_client(scores)
    used = tuple(REG[i] if isinstance(i, str) else i for i in instruments)
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=used)
    return build_features(sessions, episodes, spec, trajectories or ExpectedTrajectories({}))


def test_features_not_computable_yet_are_nan_without_numeric_warnings():
    # Session 1 has no gap to average and no score at all: every mean, slope and gap there is a
    # division by zero, which must be skipped, not computed and warned about (a warning per
    # scored request would flood the service's logs).
    sessions, episodes = one_client({"ors": [nan, 20, 24], "srs": [nan, nan, 38]})
    spec = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["srs"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = build_features(sessions, episodes, spec, ExpectedTrajectories({}))
    np.testing.assert_array_equal(got["mean_gap_days"], [nan, 7, 7])
    np.testing.assert_array_equal(got["ors_slope"], [nan, nan, 4])
    np.testing.assert_array_equal(got["srs_mean"], [nan, nan, 38])


def test_an_outcome_scale_without_a_reliable_change_has_no_reliable_change_flags():
    # HAM-D 17 has a cutoff but no reliable-change amount: its change is known, its flags are not.
    got = features({"hamd17": [30, 10, 40]}, "hamd17")
    np.testing.assert_array_equal(got["hamd17_change_intake"], [nan, 20, -10])
    for suffix in ("reliable_improvement", "reliable_deterioration"):
        column = got[f"hamd17_{suffix}"]
        assert column.dtype == np.float64 and column.isna().all(), suffix


def test_an_alliance_scale_without_a_reliable_change_flags_any_drop_at_all():
    # WAI-SR has no reliable-change amount: a drop of a single point is a drop, a rise is not.
    got = features({"wai_sr": [50, 51, 50, 50]}, "wai_sr")
    np.testing.assert_array_equal(got["wai_sr_any_drop"], [nan, 0, 1, 1])
    got = features({"wai_sr": [50, 51, 51, 60]}, "wai_sr")
    np.testing.assert_array_equal(got["wai_sr_any_drop"], [nan, 0, 0, 0])


def test_an_alliance_drop_smaller_than_the_reliable_change_is_no_drop():
    # SRS flags a drop of 1 or more: half a point is noise.
    np.testing.assert_array_equal(features({"srs": [30, 29.5, 29]}, "srs")["srs_any_drop"], [nan, 0, 0])


def test_an_outcome_scale_without_a_cutoff_has_no_distance_to_it():
    mood = Instrument(key="mood", name="Mood", min=0, max=10, higher_is_better=True, role="outcome", reliable_change=2)
    got = features({"mood": [3, 6]}, mood)
    np.testing.assert_array_equal(got["mood_current"], [3, 6])
    np.testing.assert_array_equal(got["mood_reliable_improvement"], [nan, 1])
    assert got["mood_dist_cutoff"].dtype == np.float64 and got["mood_dist_cutoff"].isna().all()


def test_off_track_is_unknown_unless_both_the_expectation_and_its_spread_are_known():
    # Session 1's line has no residual SD, session 2 has no line: off track is unknown at both, not "no".
    # Session 3 has both: 10 against an expected 20 with SD 1 is off track.
    curve = Curve(intercept=(0, nan, 0), slope=(1, 1, 1), resid_sd=(nan, 1, 1))
    got = features({"ors": [20, 20, 10]}, "ors", trajectories=ExpectedTrajectories({"ors": curve}))
    np.testing.assert_array_equal(got["ors_expected_dev"], [0, nan, -10])
    np.testing.assert_array_equal(got["ors_off_track"], [nan, nan, 1])


def test_reliable_change_counts_at_exactly_the_threshold_less_the_rounding_allowance():
    # The comparisons are inclusive: a change of exactly rc - 1e-9 reaches the threshold, one of
    # rc - 2e-9 does not (ORS reliable change 5, SRS drop 1).
    edge, short = 5 - ROUNDING_TOLERANCE, 5 - 2 * ROUNDING_TOLERANCE
    got = features({"ors": [0, edge, 0, short]}, "ors")
    # change from intake 0: edge (improved), 0, short (neither).
    np.testing.assert_array_equal(got["ors_reliable_improvement"], [nan, 1, 0, 0])
    got = features({"ors": [edge, 0]}, "ors")
    np.testing.assert_array_equal(got["ors_reliable_deterioration"], [nan, 1])
    got = features({"ors": [short, 0]}, "ors")
    np.testing.assert_array_equal(got["ors_reliable_deterioration"], [nan, 0])
    srs_edge, srs_short = 1 - ROUNDING_TOLERANCE, 1 - 2 * ROUNDING_TOLERANCE
    np.testing.assert_array_equal(features({"srs": [srs_edge, 0]}, "srs")["srs_any_drop"], [nan, 1])
    np.testing.assert_array_equal(features({"srs": [srs_short, 0]}, "srs")["srs_any_drop"], [nan, 0])
