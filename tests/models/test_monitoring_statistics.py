"""The monitor's statistics (models/realised.py, models/drift.py) and the reference profile (models/profile.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import infer_spec
from dropout_risk.models.calibration_error import expected_calibration_error
from dropout_risk.models.drift import distribution_drift, missing_drift
from dropout_risk.models.profile import (
    MIN_VALUES,
    ReferenceProfile,
    fit_profile,
    histogram,
    read_profile,
    write_profile,
)
from dropout_risk.models.realised import (
    auc_with_se,
    calibration_line,
    logistic_update,
    observed_expected,
    within_landmark_auc,
)

RNG = np.random.default_rng(7)


def _calibrated(n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Risks and outcomes drawn from them (``shift`` added to the outcomes' log-odds)."""
    p = 1 / (1 + np.exp(-RNG.normal(-1.2, 0.8, n)))
    y = (RNG.random(n) < 1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))).astype(float)
    return y, p


def test_observed_expected_covers_one_when_calibrated_and_not_when_shifted():
    y, p = _calibrated(4000)
    clients = np.arange(4000)
    assert observed_expected(y, p, clients).ci[0] < 1 < observed_expected(y, p, clients).ci[1]
    y, p = _calibrated(4000, shift=0.6)
    shifted = observed_expected(y, p, clients)
    assert shifted.ratio == pytest.approx(y.sum() / p.sum()) and shifted.ci[0] > 1


def test_a_client_counted_at_many_sessions_weighs_as_one_client_in_the_interval():
    y, p = _calibrated(500)
    once = observed_expected(y, p, np.arange(500))
    repeated = observed_expected(np.repeat(y, 4), np.repeat(p, 4), np.repeat(np.arange(500), 4))
    assert repeated.ratio == pytest.approx(once.ratio)
    assert math.log(repeated.ci[1] / repeated.ci[0]) == pytest.approx(math.log(once.ci[1] / once.ci[0]), rel=1e-9)


def test_calibration_line_matches_a_logistic_regression_on_logit_risk():
    y, p = _calibrated(3000, shift=0.3)
    x = np.log(p / (1 - p))
    reference = LogisticRegression(C=1e9, max_iter=1000).fit(x[:, None], y)
    line = calibration_line(y, p)
    assert line.slope == pytest.approx(reference.coef_[0][0], abs=1e-4)
    assert line.intercept == pytest.approx(0.3, abs=0.15)
    assert math.isnan(calibration_line(np.zeros(5), np.full(5, 0.2)).slope)


def test_a_clinics_calibration_line_is_the_statistic_training_reports():
    """The monitor and training fit the same line with one solver (models/logistic_fits.py)."""
    from dropout_risk.training.evaluation.metrics import calibration_slope_intercept

    y, p = _calibrated(2000, shift=-0.4)
    line = calibration_line(y, p)
    slope, intercept = calibration_slope_intercept(y, p)
    assert (line.slope, line.intercept) == pytest.approx((slope, intercept), abs=1e-9)


def test_separated_outcomes_have_no_calibration_line():
    """Every dropout above every completer: the likelihood has no maximum, so no slope is reported."""
    p = np.linspace(0.05, 0.95, 40)
    y = (p > 0.5).astype(float)
    assert math.isnan(calibration_line(y, p).slope)
    assert math.isnan(logistic_update(y, np.log(p / (1 - p)))[1])


def test_ece_and_auc():
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([0.25, 0.35])) == pytest.approx(0.7)
    y, p = _calibrated(800)
    auc, se = auc_with_se(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p)) and 0 < se < 0.05
    landmark = np.repeat([1, 2], 400)
    within = within_landmark_auc(y, p, landmark, min_class=10)
    expected = np.mean([roc_auc_score(y[landmark == k], p[landmark == k]) for k in (1, 2)])
    assert within.auc == pytest.approx(expected) and within.landmarks == (1, 2)
    assert within.ci[0] < within.auc < within.ci[1]
    assert within_landmark_auc(y, p, landmark, min_class=10_000).landmarks == ()


def test_histogram_drift_and_missing_rates():
    reference = histogram(RNG.normal(0, 1, 5000))
    assert len(reference.edges) == 9 and sum(reference.proportions) == pytest.approx(1.0)
    same = distribution_drift(reference, RNG.normal(0, 1, 2000), 100)
    moved = distribution_drift(reference, RNG.normal(0.5, 1, 2000), 100)
    assert same is not None and moved is not None
    assert same.psi < 0.05 and same.p_value > 0.001 and moved.psi > 0.2 and moved.p_value < 1e-10
    assert distribution_drift(reference, RNG.normal(0, 1, 20), 100) is None
    assert not histogram(np.arange(MIN_VALUES - 1.0)).has_bins  # too few values: no cut points kept
    missing = missing_drift(histogram(np.r_[np.zeros(900), np.full(100, np.nan)]), 50, 200, 100)
    assert missing is not None and missing.reference == pytest.approx(0.1) and missing.current == 0.25
    assert missing.p_value < 0.001


def test_the_profile_holds_aggregates_only_and_round_trips(tmp_path):
    n = 300
    sessions = pd.DataFrame(
        {
            "client_id": np.repeat([f"C{i:04d}" for i in range(n)], 3),
            "session_number": np.tile([1, 2, 3], n),
            "session_date": pd.to_datetime("2024-01-01") + pd.to_timedelta(np.tile([0, 7, 15], n), unit="D"),
            "missed_since_last": 0.0,
            "ors": RNG.normal(20, 6, 3 * n).round(1),
            "srs": np.where(RNG.random(3 * n) < 0.2, np.nan, 36.0),
        }
    )
    episodes = pd.DataFrame({"client_id": [f"C{i:04d}" for i in range(n)], "status": "completed"})
    spec = infer_spec(sessions, episodes, default_registry(), FeatureConfig(max_landmark=3))
    profile = fit_profile(sessions, spec, RNG.random(3 * n))
    assert set(profile.instruments) == {"ors", "srs"} and profile.clients == n
    assert profile.instruments["srs"].intake.missing_rate == pytest.approx(
        sessions.loc[sessions["session_number"] == 1, "srs"].isna().mean()
    )
    assert profile.spacing.n == 2 * n
    write_profile(profile, tmp_path)
    text = (tmp_path / "profile.json").read_text()
    assert "C0001" not in text
    assert read_profile(tmp_path) == profile == ReferenceProfile.from_dict(profile.to_dict())
    assert read_profile(tmp_path / "elsewhere") is None
