"""ProbabilityCalibrator's per-landmark fit against its documented definition, and its edges.

test_calibration.py checks that the fit fixes miscalibrated models (loose tolerances on fresh draws); these
pin the fit itself: the maximum-likelihood steps and the shrinkage the module docstring describes, which
landmarks get an intercept of their own, and what the calibrator answers for the inputs it accepts.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, minimize
from scipy.special import expit

from dropout_risk.models.calibration import MIN_CLASS_ROWS, ProbabilityCalibrator, logit, shrink_towards

# Rows and log-odds shift per landmark: 1 to 3 have enough rows of each outcome for an intercept of their
# own (min_class_rows=40); 7 and 9 have not, and inform the slope only.
SIZES = {1: 400, 2: 900, 3: 2000, 7: 150, 9: 80}
SHIFTS = {1: 0.3, 2: -0.25, 3: 0.05, 7: 0.4, 9: 1.0}


def _draws(seed: int, sizes: dict[int, int] = SIZES, rate: float = -1.0) -> tuple[np.ndarray, ...]:
    """(labels, raw probabilities, landmarks): raw log-odds twice as spread as the truth, shifted per landmark."""
    rng = np.random.default_rng(seed)
    at = np.concatenate([np.full(n, float(k)) for k, n in sizes.items()])
    true = rng.normal(rate, 0.8, at.size)
    y = (rng.random(at.size) < expit(true)).astype(int)
    p = expit(2.0 * (true - np.array([SHIFTS.get(int(k), 0.0) for k in at])))
    return y, p, at


def _mle(X: np.ndarray, y: np.ndarray, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """Unpenalised logistic maximum likelihood (no intercept unless X has one), solved to 1e-10."""

    def loss(b):
        eta = X @ b + offset
        return np.sum(np.logaddexp(0, eta) - y * eta)

    def gradient(b):
        return X.T @ (expit(X @ b + offset) - y)

    def hessian(b):
        q = expit(X @ b + offset)
        return X.T @ (X * (q * (1 - q))[:, None])

    fit = minimize(
        loss, np.zeros(X.shape[1]), jac=gradient, hess=hessian, method="trust-exact", options={"gtol": 1e-10}
    )
    return fit.x


def test_the_per_landmark_fit_is_the_documented_maximum_likelihood_with_shrunk_intercepts():
    y, p, at = _draws(31)
    calibrator = ProbabilityCalibrator("sigmoid", min_class_rows=40).fit(p, y, at)
    own = [1, 2, 3]
    assert sorted(calibrator.landmark_intercepts_) == own
    z = logit(p)
    groups = [at == k for k in own]
    rest = (at == 7) | (at == 9)
    # 1. The joint fit: the shared slope, an intercept per landmark of its own, one for the rest.
    joint = _mle(np.column_stack([z, *groups, rest]).astype(float), y)
    slope, fitted = joint[0], joint[1:4]
    # 2. The pooled intercept with that slope; each landmark's sampling variance; the shrinkage.
    pooled = brentq(lambda b: np.sum(y - expit(slope * z + b)), -50, 50, xtol=1e-14)
    variances = np.array(
        [
            1 / np.sum(expit(slope * z[g] + a) * (1 - expit(slope * z[g] + a)))
            for g, a in zip(groups, fitted, strict=True)
        ]
    )
    shifts = shrink_towards(pooled, fitted, variances) - pooled
    assert np.all((shifts / (fitted - pooled) > 0.8) & (shifts / (fitted - pooled) < 0.99))  # shrunk, not pooled
    # 3. Slope and pooled intercept refitted with the shrunk distances as offsets (0 for the rest).
    refit_slope, intercept = _mle(np.column_stack([z, np.ones_like(z)]), y, np.select(groups, shifts, 0.0))
    # scikit-learn's lbfgs stops at a gradient of 1e-4 (and C=1e6 is a tiny penalty): agreement to ~5e-4.
    assert calibrator.logit_slope == pytest.approx(refit_slope, abs=2e-3)
    assert calibrator.logit_intercept == pytest.approx(intercept, abs=2e-3)
    expected = {k: intercept + d for k, d in zip(own, shifts, strict=True)}
    assert calibrator.landmark_intercepts_ == pytest.approx(expected, abs=2e-3)
    # The refit is the calibrator's own Newton solve (no lbfgs tolerance): its likelihood equations hold exactly.
    calibrated = calibrator.transform(p, at)
    residual = y - calibrated
    assert abs(residual.sum()) < 1e-7 and abs((z * residual).sum()) < 1e-7


def test_a_landmark_column_fits_as_the_flat_array():
    y, p, at = _draws(32)
    flat = ProbabilityCalibrator("sigmoid", min_class_rows=40).fit(p, y, at)
    column = ProbabilityCalibrator("sigmoid", min_class_rows=40).fit(p, y, at.reshape(-1, 1))
    assert column.landmark_intercepts_ == flat.landmark_intercepts_ and len(flat.landmark_intercepts_) == 3
    assert (column.logit_slope, column.logit_intercept) == (flat.logit_slope, flat.logit_intercept)


def test_landmarks_get_their_own_intercept_only_beside_another_or_beside_rows_without_one():
    y, p, at = _draws(33, {1: 1500})
    alone = ProbabilityCalibrator("sigmoid").fit(p, y, at)
    plain = ProbabilityCalibrator("sigmoid").fit(p, y)
    # One landmark holding every row: its intercept is the pooled one, plain Platt scaling, no landmark needed.
    assert alone.landmark_intercepts_ == {}
    assert (alone.logit_slope, alone.logit_intercept) == (plain.logit_slope, plain.logit_intercept)
    np.testing.assert_array_equal(alone.transform(p), plain.transform(p))
    y, p, at = _draws(34, {1: 1500, 2: 1500})
    assert sorted(ProbabilityCalibrator("sigmoid").fit(p, y, at).landmark_intercepts_) == [1, 2]
    y, p, at = _draws(35, {1: 1500, 7: 100})
    assert sorted(ProbabilityCalibrator("sigmoid").fit(p, y, at).landmark_intercepts_) == [1]


def test_a_landmark_needs_enough_completers_as_well_as_dropouts():
    y, p, at = _draws(36, {1: 1500, 2: 1500})
    y2, p2, at2 = _draws(37, {3: 400}, rate=3.0)  # nearly every client drops out at landmark 3
    y, p, at = np.concatenate([y, y2]), np.concatenate([p, p2]), np.concatenate([at, at2])
    completers, dropouts = int((y2 == 0).sum()), int(y2.sum())
    assert completers < MIN_CLASS_ROWS <= dropouts
    assert sorted(ProbabilityCalibrator("sigmoid").fit(p, y, at).landmark_intercepts_) == [1, 2]


def test_landmarks_and_outcomes_of_different_lengths_are_refused():
    y, p, at = _draws(38, {1: 300, 2: 300})
    with pytest.raises(ValueError) as refused:
        ProbabilityCalibrator("sigmoid").fit(p, y, at[:-1])
    assert str(refused.value) == "landmark and outcomes differ in length"
    with pytest.raises(ValueError) as refused:
        ProbabilityCalibrator("sigmoid", min_class_rows=40).fit(p, y, at).transform(p)
    assert str(refused.value) == "this calibrator has an intercept per landmark: pass each row's landmark"


def test_shrinkage_follows_dersimonian_and_laird():
    # Two intercepts 0 and 4 around 2, variance 2 each: weights 1/2, Q = 4, scale = 1 - 1/2 = 1/2,
    # tau^2 = (Q - 1) / scale = 6, each kept at 6 / (6 + 2) = 3/4 of its distance.
    np.testing.assert_allclose(shrink_towards(2.0, np.array([0.0, 4.0]), np.array([2.0, 2.0])), [0.5, 3.5])
    # Variance 1/2 each: weights 2, Q = 4, scale = 4 - 8/4 = 2, tau^2 = 3/2, kept at 3/4 again.
    np.testing.assert_allclose(shrink_towards(1.0, np.array([0.0, 2.0]), np.array([0.5, 0.5])), [0.25, 1.75])
    # Unequal variances: weights 1 and 4, centre 1.6, Q = 3.2, scale = 5 - 17/5 = 1.6, tau^2 = 2.2/1.6.
    tau2 = 2.2 / 1.6
    expected = 1.0 + tau2 / (tau2 + np.array([1.0, 0.25])) * (np.array([0.0, 2.0]) - 1.0)
    np.testing.assert_allclose(shrink_towards(1.0, np.array([0.0, 2.0]), np.array([1.0, 0.25])), expected)
    # One landmark alone shows no spread beyond noise: the pooled intercept, without a 0/0 on the way.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(shrink_towards(0.3, np.array([1.0]), np.array([1.0])), [0.3])


def test_isotonic_adds_no_intercept_and_both_methods_survive_pickling():
    y, p, at = _draws(39, {1: 800, 2: 800})
    isotonic = ProbabilityCalibrator("isotonic").fit(p, y)
    np.testing.assert_array_equal(isotonic.logit_intercepts(None, 3), np.zeros(3))
    np.testing.assert_array_equal(isotonic.logit_intercepts(np.array([1.0, 2.0]), 2), np.zeros(2))
    sigmoid = ProbabilityCalibrator("sigmoid", min_class_rows=40).fit(p, y, at)
    for calibrator in (isotonic, sigmoid):
        restored = pickle.loads(pickle.dumps(calibrator))
        np.testing.assert_array_equal(restored.transform(p, at), calibrator.transform(p, at))
        assert restored.min_class_rows == calibrator.min_class_rows


def test_a_calibrator_pickled_before_min_class_rows_refits_with_the_documented_minimum():
    y, p, at = _draws(40, {1: 800, 2: 800, 3: 800})
    old = ProbabilityCalibrator.__new__(ProbabilityCalibrator)
    old.__setstate__({"method": "sigmoid", "slope_": 1.0, "intercept_": 0.0})  # the state of an older release
    assert old.min_class_rows == MIN_CLASS_ROWS
    fresh = ProbabilityCalibrator("sigmoid").fit(p, y, at)
    assert old.fit(p, y, at).landmark_intercepts_ == fresh.landmark_intercepts_


def test_a_model_without_information_is_calibrated_to_the_pooled_base_rate():
    """Every raw probability 1/2 (log-odds 0): no slope within sessions, so no per-landmark intercepts either
    (a zero slope keeps the pooled fit, as a negative one does), though the landmarks' dropout rates differ."""
    y1, _, at1 = _draws(41, {1: 1500})
    y2, _, at2 = _draws(42, {2: 1500}, rate=0.5)
    y, at = np.concatenate([y1, y2]), np.concatenate([at1, at2])
    assert y2.mean() - y1.mean() > 0.2
    calibrator = ProbabilityCalibrator("sigmoid").fit(np.full(y.size, 0.5), y, at)
    assert calibrator.logit_slope == 0.0
    calibrated = calibrator.transform(np.full(4, 0.5), np.array([1.0, 2.0, 3.0, np.nan]))
    np.testing.assert_allclose(calibrated, y.mean(), rtol=1e-4)
