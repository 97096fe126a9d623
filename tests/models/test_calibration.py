"""ProbabilityCalibrator: Platt scaling (an intercept per landmark) fixes a miscalibrated model, ranking untouched."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dropout_risk.models.calibration import EPS, ProbabilityCalibrator, logit, shrink_towards
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


# --- an intercept per landmark ------------------------------------------------------------------------

# How far the raw model's log-odds are off at each landmark (true = raw + shift): one pooled
# intercept cannot fix under-prediction at one session and over-prediction at another.
SHIFTS = {1: 0.6, 2: -0.5, 3: 0.0}


def draws_by_landmark(seed: int, per_landmark: int = 6000, shifts=SHIFTS) -> tuple[np.ndarray, ...]:
    """(labels, raw probabilities, landmarks): raw log-odds twice as spread as the truth, shifted per landmark."""
    rng = np.random.default_rng(seed)
    landmark = np.repeat(np.array(list(shifts), dtype=float), per_landmark)
    true_logit = rng.normal(-1.2, 0.8, landmark.size)
    y = (rng.random(landmark.size) < 1 / (1 + np.exp(-true_logit))).astype(int)
    shift = np.array([shifts[int(k)] for k in landmark])
    p = 1 / (1 + np.exp(-2.0 * (true_logit - shift)))
    return y, p, landmark


def in_the_large(y: np.ndarray, p: np.ndarray, landmark: np.ndarray) -> dict[int, float]:
    return {int(k): calibration_slope_intercept(y[landmark == k], p[landmark == k])[1] for k in np.unique(landmark)}


def test_per_landmark_intercepts_fix_landmarks_miscalibrated_in_different_directions():
    y_fit, p_fit, at_fit = draws_by_landmark(11)
    y_new, p_new, at_new = draws_by_landmark(12)
    pooled = ProbabilityCalibrator("sigmoid").fit(p_fit, y_fit)
    per_landmark = ProbabilityCalibrator("sigmoid").fit(p_fit, y_fit, at_fit)
    before = in_the_large(y_new, pooled.transform(p_new), at_new)
    after = in_the_large(y_new, per_landmark.transform(p_new, at_new), at_new)
    # the pooled fit leaves landmark 1 under-predicted and landmark 2 over-predicted ...
    assert before[1] > 0.3 and before[2] < -0.3
    # ... the per-landmark fit puts each one right, on fresh draws
    assert all(abs(after[k]) < 0.1 for k in SHIFTS), after
    assert set(per_landmark.landmark_intercepts_) == set(SHIFTS)
    # one slope for every landmark, the truth's 1/2, learnt within landmarks
    assert per_landmark.logit_slope == pytest.approx(0.5, abs=0.05)
    for k in SHIFTS:
        slope, _ = calibration_slope_intercept(y_new[at_new == k], per_landmark.transform(p_new, at_new)[at_new == k])
        assert abs(slope - 1) < 0.15


def test_the_shared_slope_keeps_the_ranking_within_each_landmark():
    y, p, at = draws_by_landmark(13, 1500)
    calibrated = ProbabilityCalibrator("sigmoid").fit(p, y, at).transform(p, at)
    for k in SHIFTS:
        rows = at == k
        assert roc_auc_score(y[rows], calibrated[rows]) == pytest.approx(roc_auc_score(y[rows], p[rows]), abs=1e-12)


def test_a_landmark_with_few_rows_takes_the_pooled_intercept():
    y, p, at = draws_by_landmark(14, 3000, shifts={1: 0.6, 2: -0.5, 3: 1.5})
    keep = (at != 3) | (np.arange(at.size) % 100 == 0)  # 30 rows at landmark 3: a handful of dropouts
    y, p, at = y[keep], p[keep], at[keep]
    calibrator = ProbabilityCalibrator("sigmoid").fit(p, y, at)
    assert set(calibrator.landmark_intercepts_) == {1, 2}
    # the pooled intercept: maximum likelihood over every row, the shared slope and the landmarks'
    # own distances from it as offsets (landmark 3's rows have none)
    pooled = calibrator.logit_intercept
    offset = np.select([at == k for k in (1, 2)], [calibrator.landmark_intercepts_[k] - pooled for k in (1, 2)], 0.0)
    score = lambda b: np.sum(y - 1 / (1 + np.exp(-(calibrator.logit_slope * logit(p) + b + offset))))  # noqa: E731
    assert abs(score(pooled)) < 1e-6 and score(pooled - 0.01) > 0 > score(pooled + 0.01)
    grid = np.array([0.05, 0.3, 0.7])
    expected = 1 / (1 + np.exp(-(calibrator.logit_slope * logit(grid) + pooled)))
    for unseen in (3.0, 4.0, np.nan, 2.5):  # too few rows, never seen, missing, not a session
        np.testing.assert_allclose(calibrator.transform(grid, np.full(3, unseen)), expected, rtol=0, atol=1e-12)
    assert calibrator.transform(grid, np.full(3, 1.0))[0] != pytest.approx(expected[0], abs=1e-3)


def test_min_class_rows_is_the_documented_minimum():
    y, p, at = draws_by_landmark(15, 600)
    counts = {k: min(int(y[at == k].sum()), int((1 - y[at == k]).sum())) for k in SHIFTS}
    cut = sorted(counts.values())[1]  # enough for the two landmarks with the most, not the third
    calibrator = ProbabilityCalibrator("sigmoid", min_class_rows=cut).fit(p, y, at)
    assert set(calibrator.landmark_intercepts_) == {k for k, n in counts.items() if n >= cut}
    assert ProbabilityCalibrator("sigmoid", min_class_rows=10**6).fit(p, y, at).landmark_intercepts_ == {}


def test_without_landmarks_it_is_plain_platt_scaling_and_a_per_landmark_fit_needs_them():
    y, p, at = draws_by_landmark(16, 1000)
    plain = ProbabilityCalibrator("sigmoid").fit(p, y)
    reference = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
    assert plain.landmark_intercepts_ == {}
    assert plain.logit_slope == reference.coef_[0, 0] and plain.logit_intercept == reference.intercept_[0]
    with pytest.raises(ValueError, match="pass each row's landmark"):
        ProbabilityCalibrator("sigmoid").fit(p, y, at).transform(p)


def test_isotonic_stays_pooled():
    y, p, at = draws_by_landmark(17, 1000)
    pooled = ProbabilityCalibrator("isotonic").fit(p, y)
    given = ProbabilityCalibrator("isotonic").fit(p, y, at)
    np.testing.assert_array_equal(given.transform(p, at), pooled.transform(p))
    assert given.landmark_intercepts_ == {} and given.logit_intercept == 0.0


def test_a_calibrator_pickled_before_per_landmark_intercepts_scores_as_it_did():
    y, p = draws(18, 2000)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
    old = ProbabilityCalibrator.__new__(ProbabilityCalibrator)
    old.__setstate__({"method": "sigmoid", "model_": platt})  # what pickle restores from the old layout
    grid = np.array([0.01, 0.2, 0.6, 0.99])
    np.testing.assert_allclose(
        old.transform(grid), platt.predict_proba(logit(grid).reshape(-1, 1))[:, 1], rtol=0, atol=1e-12
    )
    assert old.landmark_intercepts_ == {}


def test_landmarks_that_differ_by_noise_alone_share_the_pooled_intercept():
    """A model calibrated within every session gets no per-landmark intercepts that would only add noise."""
    y, p, at = draws_by_landmark(19, 2000, shifts={1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0})
    calibrator = ProbabilityCalibrator("sigmoid").fit(p, y, at)
    assert set(calibrator.landmark_intercepts_) == {1, 2, 3, 4}
    pooled = calibrator.logit_intercept
    assert all(abs(b - pooled) < 0.02 for b in calibrator.landmark_intercepts_.values())


def test_shrinkage_keeps_real_differences_and_pools_noise():
    variances = np.array([0.01, 0.01, 0.04, 0.04])
    far = np.array([-1.0, 1.0, -1.0, 1.0])  # 5-10 standard errors from the pooled 0
    kept = shrink_towards(0.0, far, variances)
    assert np.all(np.abs(kept - far) < 0.05) and np.all(np.sign(kept) == np.sign(far))
    assert np.all(np.abs(kept[2:]) < np.abs(kept[:2]))  # the noisier landmarks move more
    near = np.array([-0.05, 0.05, -0.1, 0.1])  # under one standard error
    np.testing.assert_array_equal(shrink_towards(0.3, near + 0.3, variances), np.full(4, 0.3))


def test_with_no_landmark_beyond_noise_it_is_exactly_the_pooled_platt_fit():
    y, p, at = draws_by_landmark(20, 2000, shifts={1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0})
    per_landmark = ProbabilityCalibrator("sigmoid").fit(p, y, at)
    pooled = ProbabilityCalibrator("sigmoid").fit(p, y)
    assert per_landmark.logit_slope == pooled.logit_slope and per_landmark.logit_intercept == pooled.logit_intercept
    np.testing.assert_array_equal(per_landmark.transform(p, at), pooled.transform(p))


def test_a_model_reversed_within_sessions_keeps_the_pooled_fit_and_its_ranking():
    """intake_only can rank clients worse than chance within sessions, right only between them: a
    within-session slope would be negative and reverse every session's ranking."""
    rng = np.random.default_rng(21)
    at = np.repeat([1.0, 2.0, 3.0, 4.0], 3000)
    rate = np.select([at == k for k in (1, 2, 3, 4)], [0.35, 0.2, 0.1, 0.05])
    y = (rng.random(at.size) < rate).astype(int)
    shifts = np.select([at == k for k in (1, 2, 3, 4)], [0.3, -0.3, 0.3, -0.3])  # miscalibrated by session
    raw = 1 / (1 + np.exp(-(logit(rate) + shifts - 0.3 * (y - rate) + rng.normal(0, 0.05, at.size))))
    calibrator = ProbabilityCalibrator("sigmoid").fit(raw, y, at)
    assert calibrator.logit_slope > 0
    calibrated = calibrator.transform(raw, at)
    for k in (1.0, 2.0, 3.0, 4.0):
        rows = at == k
        assert roc_auc_score(y[rows], raw[rows]) < 0.5
        assert roc_auc_score(y[rows], calibrated[rows]) == pytest.approx(roc_auc_score(y[rows], raw[rows]), abs=1e-12)
