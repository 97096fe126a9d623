"""The transparent baseline: number of clinical flags firing -> a fitted, monotone dropout rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from dropout_risk.features.flags import FLAGS, clinical_flags
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.models.clinical_rule import ClinicalRuleClassifier

REG = default_registry()
SPEC = FeatureSpec(max_landmark=8, off_track_z=1.0, instruments=(REG["ors"], REG["srs"])).to_dict()

# Column values that make each flag fire (first) or not (second) under SPEC.
FIRING = {
    "alliance_below_cutoff": ("srs_current", 30.0, 38.0),
    "alliance_drop": ("srs_change_last", -2.0, 0.0),
    "no_reliable_improvement": ("ors_reliable_improvement", 0.0, 1.0),
    "off_track": ("ors_off_track", 1.0, 0.0),
    "missed_appointments": ("missed_last", 1.0, 0.0),
}


def rows_with_flags(fire: np.ndarray) -> pd.DataFrame:
    """One feature row per row of ``fire`` (n x 5 booleans, FLAGS order), at landmark 5."""
    columns = {"landmark": np.full(len(fire), 5.0), "missed_total": np.zeros(len(fire))}
    for j, name in enumerate(FLAGS):
        column, on, off = FIRING[name]
        columns[column] = np.where(fire[:, j], on, off)
    return pd.DataFrame(columns)


def rows_with_counts(counts) -> pd.DataFrame:
    counts = np.asarray(counts)
    return rows_with_flags(np.arange(len(FLAGS))[None, :] < counts[:, None])


def synthetic(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    fire = rng.random((n, len(FLAGS))) < 0.35
    count = fire.sum(axis=1)
    y = (rng.random(n) < 0.08 + 0.12 * count).astype(int)
    return rows_with_flags(fire), y


def test_helper_rows_fire_the_intended_flags():
    fire = np.eye(len(FLAGS), dtype=bool)
    out = clinical_flags(rows_with_flags(fire), FeatureSpec.from_dict(SPEC))
    np.testing.assert_array_equal(out.to_numpy(), fire)


def test_decision_function_is_the_number_of_flags_firing():
    X = rows_with_counts([0, 1, 2, 3, 4, 5, 2])
    np.testing.assert_array_equal(ClinicalRuleClassifier(SPEC).decision_function(X), [0, 1, 2, 3, 4, 5, 2])


def test_rates_follow_the_observed_dropout_rate_per_count():
    X, y = synthetic()
    rule = ClinicalRuleClassifier(SPEC).fit(X, y)
    assert rule.rate_.shape == (len(FLAGS) + 1,)
    assert (np.diff(rule.rate_) >= 0).all()
    score = rule.decision_function(X)
    for count in (0, 1, 2, 3):  # well populated counts: smoothing barely moves them
        assert rule.rate_[count] == pytest.approx(y[score == count].mean(), abs=0.03)
    assert rule.rate_[len(FLAGS)] > rule.rate_[0] + 0.3


def test_rates_are_forced_monotone_when_the_raw_rates_are_not():
    # 0 flags: 40% drop out; 1 flag: 10%; 2 flags: 50% (200 rows each).
    counts = np.repeat([0, 1, 2], 200)
    y = np.concatenate([np.arange(200) < 80, np.arange(200) < 20, np.arange(200) < 100]).astype(int)
    rule = ClinicalRuleClassifier(SPEC).fit(rows_with_counts(counts), y)
    assert (np.diff(rule.rate_) >= 0).all()
    assert rule.rate_[0] == pytest.approx(rule.rate_[1])  # the violators are pooled
    assert rule.rate_[0] == pytest.approx(0.25, abs=0.02)
    assert rule.rate_[2] > rule.rate_[1]


def test_probabilities_stay_strictly_inside_zero_one():
    # Every 0-flag row completes and every 5-flag row drops out: smoothing keeps both off 0 and 1.
    counts = np.repeat([0, 5], 100)
    y = (counts == 5).astype(int)
    rule = ClinicalRuleClassifier(SPEC).fit(rows_with_counts(counts), y)
    p = rule.predict_proba(rows_with_counts(np.arange(len(FLAGS) + 1)))[:, 1]
    assert ((p > 0) & (p < 1)).all()
    assert (np.diff(p) >= 0).all()
    # A count never seen in training (1-4) lies between its seen neighbours.
    assert p[0] <= p[2] <= p[5]


def test_more_flags_mean_higher_risk():
    X, y = synthetic(seed=1)
    rule = ClinicalRuleClassifier(SPEC).fit(X, y)
    base = np.zeros((1, len(FLAGS)), dtype=bool)
    risk = []
    for k in range(len(FLAGS) + 1):
        fire = base.copy()
        fire[0, :k] = True
        risk.append(rule.predict_proba(rows_with_flags(fire))[0, 1])
    assert all(b >= a for a, b in zip(risk, risk[1:], strict=False))
    assert risk[-1] > risk[0]
    # Adding a flag to any row never lowers its risk.
    X_more = X.assign(missed_last=1.0)
    assert (rule.predict_proba(X_more)[:, 1] >= rule.predict_proba(X)[:, 1]).all()


def test_predict_proba_shape_and_predict(clinic):
    rule = ClinicalRuleClassifier(clinic.spec.to_dict()).fit(clinic.train, clinic.y)
    proba = rule.predict_proba(clinic.features)
    assert proba.shape == (len(clinic.features), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba > 0) & (proba < 1)).all()
    np.testing.assert_array_equal(rule.predict(clinic.features), (proba[:, 1] >= 0.5).astype(int))
    np.testing.assert_array_equal(rule.classes_, [0, 1])
    assert (np.diff(rule.rate_) >= 0).all()
    # The same flag count gives the same probability, wherever the row comes from.
    score = rule.decision_function(clinic.features).astype(int)
    np.testing.assert_array_equal(proba[:, 1], rule.rate_[score])


def test_clone_gives_an_unfitted_copy_that_refits_identically():
    X, y = synthetic(seed=2)
    rule = ClinicalRuleClassifier(SPEC).fit(X, y)
    copy = clone(rule)
    assert copy.get_params() == rule.get_params()
    assert copy.spec == SPEC and copy.spec is not SPEC
    assert not hasattr(copy, "rate_")
    np.testing.assert_array_equal(copy.fit(X, y).rate_, rule.rate_)


def test_works_inside_scikit_learn_cross_validation():
    X, y = synthetic(seed=3)
    scores = cross_val_score(ClinicalRuleClassifier(SPEC), X, y, cv=3, scoring="roc_auc")
    assert np.isfinite(scores).all() and (scores > 0.6).all()


def test_unfitted_rule_cannot_predict():
    with pytest.raises((NotFittedError, AttributeError)):
        ClinicalRuleClassifier(SPEC).predict_proba(rows_with_counts([1]))
