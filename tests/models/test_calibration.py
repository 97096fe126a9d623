"""ProbabilityCalibrator: Platt scaling fixes an over-confident model without touching its ranking."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dropout_risk.models.calibration import EPS, ProbabilityCalibrator, logit
from dropout_risk.training.evaluation.metrics import calibration_slope_intercept

OVERCONFIDENCE = 3.0  # the model's log-odds are 3x the true ones: true calibration slope 1/3
N = 20_000


def draws(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(labels, over-confident probabilities) with true log-odds ~ N(-1, 1)."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    p = 1 / (1 + np.exp(-OVERCONFIDENCE * true_logit))
    return y, p


def test_sigmoid_calibration_restores_slope_on_held_out_draws():
    y_fit, p_fit = draws(1)
    y_new, p_new = draws(2)
    # The test data really are miscalibrated: slope 1/3 before. (Measured with scikit-learn here:
    # training.metrics' undamped Newton does not converge on log-odds spanning +-15.)
    slope_before = LogisticRegression(C=np.inf).fit(logit(p_new).reshape(-1, 1), y_new).coef_[0, 0]
    assert abs(slope_before - 1 / OVERCONFIDENCE) < 0.1

    calibrator = ProbabilityCalibrator("sigmoid").fit(p_fit, y_fit)
    slope, intercept = calibration_slope_intercept(y_new, calibrator.transform(p_new))
    assert abs(slope - 1) < 0.1
    assert abs(intercept) < 0.1
    assert calibrator.logit_slope == pytest.approx(1 / OVERCONFIDENCE, abs=0.05)


def test_sigmoid_calibration_is_linear_in_the_log_odds_with_logit_slope():
    y, p = draws(3, 2000)
    calibrator = ProbabilityCalibrator("sigmoid").fit(p, y)
    q = np.array([0.01, 0.1, 0.3, 0.5, 0.8, 0.99])
    out = logit(calibrator.transform(q))
    # calibrated log-odds = intercept + logit_slope * raw log-odds, exactly
    intercept = out - calibrator.logit_slope * logit(q)
    np.testing.assert_allclose(intercept, intercept[0], atol=1e-9)


def test_sigmoid_calibration_preserves_ranking():
    y_fit, p_fit = draws(4)
    y_new, p_new = draws(5)
    calibrator = ProbabilityCalibrator("sigmoid").fit(p_fit, y_fit)
    calibrated = calibrator.transform(p_new)
    assert roc_auc_score(y_new, calibrated) == pytest.approx(roc_auc_score(y_new, p_new), abs=1e-12)
    order = np.argsort(p_new, kind="stable")
    assert (np.diff(calibrated[order]) >= 0).all()


def test_sigmoid_output_is_a_probability():
    y, p = draws(6, 2000)
    out = ProbabilityCalibrator().fit(p, y).transform(np.array([0.0, 1e-12, 0.5, 1 - 1e-12, 1.0]))
    assert np.isfinite(out).all()
    assert ((out > 0) & (out < 1)).all()


def test_isotonic_output_is_monotone_and_strictly_inside_zero_one():
    y, p = draws(7, 5000)
    # Make the extremes certain so an unbounded fit would return exactly 0 and 1.
    y = np.where(p > 0.95, 1, np.where(p < 0.01, 0, y))
    calibrator = ProbabilityCalibrator("isotonic").fit(p, y)
    grid = np.linspace(0, 1, 1001)
    out = calibrator.transform(grid)
    assert (np.diff(out) >= 0).all()
    assert ((out > 0) & (out < 1)).all()
    assert out.min() == pytest.approx(EPS) and out.max() == pytest.approx(1 - EPS)
    # Out-of-range input is clipped, not extrapolated.
    assert ((calibrator.transform(np.array([-0.5, 1.5])) > 0) & (calibrator.transform(np.array([-0.5, 1.5])) < 1)).all()
    assert calibrator.logit_slope == 1.0


def test_isotonic_improves_calibration_of_an_overconfident_model():
    y_fit, p_fit = draws(8)
    y_new, p_new = draws(9)
    calibrated = ProbabilityCalibrator("isotonic").fit(p_fit, y_fit).transform(p_new)
    slope, _ = calibration_slope_intercept(y_new, calibrated)
    assert abs(slope - 1) < 0.2
    assert abs(np.mean(calibrated) - np.mean(y_new)) < 0.02


@pytest.mark.parametrize("method", ["platt", "beta", "", None])
def test_invalid_method_raises(method):
    with pytest.raises(ValueError, match="unknown calibration method"):
        ProbabilityCalibrator(method)


def test_sigmoid_calibration_is_the_unpenalised_platt_fit_even_on_few_clients():
    # scikit-learn's default C=1 would shrink the slope towards 0 on a small calibration set.
    y, p = draws(10, 60)
    calibrator = ProbabilityCalibrator("sigmoid").fit(p, y)
    reference = LogisticRegression(C=np.inf).fit(logit(p).reshape(-1, 1), y)
    assert calibrator.logit_slope == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    grid = np.array([0.01, 0.1, 0.3, 0.5, 0.8, 0.99])
    np.testing.assert_allclose(
        calibrator.transform(grid), reference.predict_proba(logit(grid).reshape(-1, 1))[:, 1], rtol=1e-5
    )
    shrunk = LogisticRegression().fit(logit(p).reshape(-1, 1), y).coef_[0, 0]
    assert abs(shrunk - reference.coef_[0, 0]) > 1e-3 * abs(reference.coef_[0, 0])  # the check can tell
