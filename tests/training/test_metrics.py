"""Evaluation metrics: known answers, hand-computed examples, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from dropout_risk.models.calibration import logit
from dropout_risk.training.evaluation.batched import BATCHED_METRICS, ResampleWeights
from dropout_risk.training.evaluation.metrics import (
    alert_lead_time,
    binary_metrics,
    calibration_slope_intercept,
    evaluate,
    expected_calibration_error,
    net_benefit,
    net_benefit_treat_all,
    top_fraction_metrics,
)


@pytest.fixture(scope="module")
def calibrated():
    """p ~ U(0, 1), y ~ Bernoulli(p): perfectly calibrated by construction."""
    rng = np.random.default_rng(20240601)
    p = rng.random(50_000)
    y = (rng.random(p.size) < p).astype(int)
    return y, p


# ---------------------------------------------------------------- calibration


def test_perfectly_calibrated_sample_gives_slope_one_intercept_zero_small_ece(calibrated):
    y, p = calibrated
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1.0, abs=0.05)
    assert intercept == pytest.approx(0.0, abs=0.05)
    assert expected_calibration_error(y, p) < 0.02


def test_squashed_predictions_give_slope_above_one(calibrated):
    y, p = calibrated
    squashed = expit(0.5 * logit(p))  # pulled toward 0.5: the model is under-confident
    slope, _ = calibration_slope_intercept(y, squashed)
    assert slope == pytest.approx(2.0, abs=0.15)
    assert expected_calibration_error(y, squashed) > 0.05


def test_overconfident_predictions_give_slope_below_one(calibrated):
    y, p = calibrated
    slope, _ = calibration_slope_intercept(y, expit(2.0 * logit(p)))
    assert slope == pytest.approx(0.5, abs=0.05)


def test_shifted_predictions_give_intercept_of_the_right_sign(calibrated):
    y, p = calibrated
    _, too_high = calibration_slope_intercept(y, expit(logit(p) + 1.0))  # risk over-predicted
    _, too_low = calibration_slope_intercept(y, expit(logit(p) - 1.0))  # risk under-predicted
    assert too_high == pytest.approx(-1.0, abs=0.06)
    assert too_low == pytest.approx(1.0, abs=0.06)


def test_slope_matches_sklearn_unpenalised_logistic_regression():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, 3000)
    y = (rng.random(p.size) < expit(0.3 + 0.7 * logit(p))).astype(int)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p)[:, None], y)
    slope, _ = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-4)


def test_intercept_solves_the_offset_model_score_equation():
    rng = np.random.default_rng(4)
    p = rng.beta(2, 5, 3000)
    y = (rng.random(p.size) < expit(0.4 + logit(p))).astype(int)
    _, intercept = calibration_slope_intercept(y, p)
    # maximum likelihood with an offset: expected events equal observed events
    assert expit(intercept + logit(p)).sum() == pytest.approx(y.sum(), rel=1e-8)


def test_probabilities_of_exactly_zero_and_one_are_clipped_not_infinite():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 0])
    p = np.array([0.0, 0.2, 1.0, 0.7, 0.4, 0.6, 0.9, 0.1, 0.3, 0.8])  # classes overlap: a finite fit
    slope, intercept = calibration_slope_intercept(y, p)
    assert np.isfinite(slope) and np.isfinite(intercept)


def test_separable_or_constant_predictions_give_nan_slope_without_raising():
    y = np.array([0, 0, 0, 1, 1, 1])
    slope, _ = calibration_slope_intercept(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert math.isnan(slope)
    slope, intercept = calibration_slope_intercept(y, np.full(6, 0.3))
    assert math.isnan(slope)
    assert intercept == pytest.approx(-logit(np.array([0.3]))[0])  # log-odds of 1/2 minus logit(0.3)


def test_ece_by_hand_and_against_calibration_curve(calibrated):
    # bins [0, .5] and (.5, 1]: bin 1 holds p = .2, .4 (mean .3) with y = 0, 1 (mean .5);
    # bin 2 holds p = .6, .8, 1.0 (mean .8) with y = 1, 1, 0 (mean 2/3)
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    expected = 2 / 5 * abs(0.5 - 0.3) + 3 / 5 * abs(2 / 3 - 0.8)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(expected)

    y, p = calibrated
    p = np.round(p * 0.8 + 0.1, 2)  # miscalibrated, with values on bin edges
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    edges = np.linspace(0, 1, 11)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
    reference = np.sum(counts[counts > 0] / p.size * np.abs(prob_true - prob_pred))
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(reference, rel=1e-12)


# ---------------------------------------------------------------- clinical usefulness


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.7, 0.6, 0.4, 0.3, 0.1])
    t = np.array([0.25, 0.5, 0.6, 0.95])
    # t=.25: flag 5 rows, TP 3 FP 2; t=.5: TP 2 FP 1; t=.6 (p >= t flags the .6): TP 2 FP 1; t=.95: none
    expected = [3 / 6 - 2 / 6 * (0.25 / 0.75), 2 / 6 - 1 / 6 * 1.0, 2 / 6 - 1 / 6 * 1.5, 0.0]
    np.testing.assert_allclose(net_benefit(y, p, t), expected, atol=1e-12)
    np.testing.assert_allclose(
        net_benefit_treat_all(y, t), [0.5 - 0.5 / 3, 0.0, 0.5 - 0.5 * 1.5, 0.5 - 0.5 * 19], atol=1e-12
    )
    # a perfect classifier below its cut point: net benefit = prevalence
    assert net_benefit(y, y * 0.8 + 0.1, [0.5])[0] == pytest.approx(0.5)


def test_net_benefit_rejects_threshold_one():
    with pytest.raises(ValueError):
        net_benefit([0, 1], [0.2, 0.8], [1.0])


def test_top_fraction_by_hand():
    # ranked by risk: y = 1, 0, 1, 1, 0, 0, 0, 1, 0, 0 (4 dropouts among 10 rows)
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 0, 1, 1, 0, 0, 0, 1, 0, 0])
    order = np.random.default_rng(0).permutation(10)  # row order must not matter
    out = top_fraction_metrics(y[order], p[order], fractions=(0.1, 0.25, 0.3))
    assert out == pytest.approx(
        {
            "sensitivity_top10": 1 / 4,
            "precision_top10": 1.0,  # k = 1
            "sensitivity_top25": 2 / 4,
            "precision_top25": 2 / 3,  # k = ceil(2.5) = 3
            "sensitivity_top30": 2 / 4,
            "precision_top30": 2 / 3,  # k = 3, although 0.3 * 10 > 3 in floats
        }
    )


def _lead_frame() -> pd.DataFrame:
    rows = [
        # client A: dropout, first at/above 0.5 at landmark 2, last attended session 6 -> lead 4
        ("A", 1, 0.1, 1, 6),
        ("A", 2, 0.5, 1, 6),
        ("A", 3, 0.7, 1, 6),
        ("A", 4, 0.2, 1, 6),
        # client B: dropout never alerted
        ("B", 1, 0.2, 1, 3),
        ("B", 2, 0.3, 1, 3),
        ("B", 3, 0.4, 1, 3),
        # client C: completed therapy; its alerts do not count
        ("C", 1, 0.9, 0, 12),
        ("C", 2, 0.9, 0, 12),
        # client D: dropout alerted at landmark 1, last session 2 -> lead 1
        ("D", 1, 0.8, 1, 2),
        ("D", 2, 0.3, 1, 2),
    ]
    frame = pd.DataFrame(rows, columns=["client_id", "landmark", "risk", "label", "last_session"])
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # first alert is by landmark, not row


def test_alert_lead_time_on_hand_built_frame():
    out = alert_lead_time(_lead_frame(), threshold=0.5)
    assert out["alerted_share"] == pytest.approx(2 / 3)
    assert out["median_lead_sessions"] == pytest.approx(2.5)
    assert out["mean_lead_sessions"] == pytest.approx(2.5)
    assert (out["n_dropouts"], out["n_alerted"]) == (3, 2)


def test_alert_lead_time_with_no_alerts_is_nan():
    out = alert_lead_time(_lead_frame(), threshold=0.99)
    assert out["alerted_share"] == 0.0
    assert math.isnan(out["median_lead_sessions"]) and math.isnan(out["mean_lead_sessions"])


# ---------------------------------------------------------------- degenerate and malformed input


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_aucs_not_an_exception(label):
    p = np.array([0.1, 0.4, 0.35, 0.8])
    out = binary_metrics(np.full(4, label), p)
    assert math.isnan(out["roc_auc"]) and math.isnan(out["pr_auc"])
    assert math.isnan(out["calibration_slope"]) and math.isnan(out["calibration_intercept"])
    assert out["brier"] == pytest.approx(np.mean((p - label) ** 2))
    assert out["n_rows"] == 4


def test_empty_input_gives_nan():
    out = binary_metrics(np.array([]), np.array([]))
    assert out["n_rows"] == 0
    for key in (
        "roc_auc",
        "pr_auc",
        "brier",
        "calibration_slope",
        "calibration_intercept",
        "ece",
        "prevalence",
        "sensitivity_top10",
        "precision_top10",
    ):
        assert math.isnan(out[key]), key
    assert all(math.isnan(v) for v in out["net_benefit"].values())


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([0, 1, 1], [0.2, np.nan, 0.4]),  # missing risk
        ([0, 1, 1], [0.2, 1.4, 0.4]),  # not a probability
        ([0, 2, 1], [0.2, 0.3, 0.4]),  # not a 0/1 label
        ([0, 1], [0.2, 0.3, 0.4]),  # lengths differ
    ],
)
def test_malformed_input_raises(y, p):
    with pytest.raises(ValueError):
        binary_metrics(y, p)


def test_binary_metrics_agree_with_sklearn(calibrated):
    y, p = calibrated
    out = binary_metrics(y, p, thresholds=(0.1, 0.25))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert out["brier"] == pytest.approx(brier_score_loss(y, p))
    assert out["prevalence"] == pytest.approx(y.mean())
    assert set(out["net_benefit"]) == set(out["net_benefit_treat_all"]) == {"0.1", "0.25"}


# ---------------------------------------------------------------- batched kernels (used by the bootstrap)


@pytest.mark.parametrize("name", ["roc_auc", "pr_auc", "brier", "ece", "calibration_slope", "calibration_intercept"])
def test_batched_metrics_equal_the_metric_on_repeated_rows(name):
    rng = np.random.default_rng(11)
    n, n_clients = 400, 120
    codes = rng.integers(0, n_clients, n)
    p = np.round(rng.beta(2, 4, n), 2)  # ties
    y = (rng.random(n) < p).astype(float)
    counts = rng.poisson(1.0, (3, n_clients)).astype(float)  # includes zeros
    got = BATCHED_METRICS[name](y, p, ResampleWeights(counts, codes))
    single = {
        "roc_auc": lambda yy, pp: roc_auc_score(yy, pp),
        "pr_auc": lambda yy, pp: average_precision_score(yy, pp),
        "brier": lambda yy, pp: brier_score_loss(yy, pp),
        "ece": expected_calibration_error,
        "calibration_slope": lambda yy, pp: calibration_slope_intercept(yy, pp)[0],
        "calibration_intercept": lambda yy, pp: calibration_slope_intercept(yy, pp)[1],
    }[name]
    for b in range(3):
        reps = counts[b, codes].astype(int)
        expected = single(np.repeat(y, reps), np.repeat(p, reps))
        assert got[b] == pytest.approx(expected, rel=1e-7, abs=1e-10)


# ---------------------------------------------------------------- evaluate


def test_evaluate_pooled_and_by_landmark():
    rng = np.random.default_rng(5)
    n_clients, n_landmarks = 300, 4
    frame = pd.DataFrame(
        {
            "client_id": np.repeat([f"c{i}" for i in range(n_clients)], n_landmarks),
            "landmark": np.tile(np.arange(1, n_landmarks + 1), n_clients),
            "label": np.repeat(rng.integers(0, 2, n_clients), n_landmarks),
        }
    )
    frame["risk"] = np.clip(0.3 * frame["label"] + rng.random(len(frame)) * 0.7, 0, 1)
    out = evaluate(frame)
    assert set(out) == {"pooled", "by_landmark"}
    assert list(out["by_landmark"]) == ["1", "2", "3", "4"]
    assert out["pooled"]["n_clients"] == n_clients and out["pooled"]["n_rows"] == len(frame)
    assert out["by_landmark"]["2"]["n_clients"] == n_clients
    sub = frame[frame["landmark"] == 3]
    assert out["by_landmark"]["3"]["roc_auc"] == pytest.approx(roc_auc_score(sub["label"], sub["risk"]))
    assert "alerted_share" not in out["pooled"]  # no threshold, no last_session

    frame["last_session"] = 10
    with_alerts = evaluate(frame, alert_threshold=0.6)
    assert 0.0 < with_alerts["pooled"]["alerted_share"] <= 1.0
    assert with_alerts["pooled"]["alert_threshold"] == 0.6


def test_calibration_slope_of_strongly_overconfident_predictions_matches_sklearn():
    """Regression: plain Newton from (0, 1) oscillated to NaN here (predicted log-odds x3)."""
    rng = np.random.default_rng(0)
    true_logit = rng.normal(-1, 1, 20_000)
    y = rng.binomial(1, expit(true_logit))
    p = expit(3 * true_logit)
    slope, _ = calibration_slope_intercept(y, p)
    x = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    expected = LogisticRegression(C=np.inf).fit(x[:, None], y).coef_[0, 0]
    assert slope == pytest.approx(expected, abs=1e-4)
    assert slope == pytest.approx(1 / 3, abs=0.03)
