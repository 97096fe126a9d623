"""The candidate pipelines on a simulated clinic: fit, predict, explain exactly, tolerate odd input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from dropout_risk.models.estimators import (
    ColumnSelector,
    lightgbm_contributions,
    logistic_contributions,
    make_candidate,
)

KINDS = ("logistic", "lightgbm")


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


@pytest.fixture(scope="module")
def columns(clinic) -> list[str]:
    return clinic.spec.feature_columns()


@pytest.fixture(scope="module")
def fitted(clinic, columns) -> dict:
    return {kind: make_candidate(kind, clinic.train, columns).fit(clinic.train, clinic.y) for kind in KINDS}


def contributions(kind: str, pipeline, X: pd.DataFrame):
    return (logistic_contributions if kind == "logistic" else lightgbm_contributions)(pipeline, X)


def with_gender(X: pd.DataFrame, values, categories) -> pd.DataFrame:
    return X.assign(gender=pd.Categorical(values, categories=categories))


# --- fit and predict -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_candidate_fits_and_predicts_probabilities(clinic, fitted, kind):
    proba = fitted[kind].predict_proba(clinic.features)
    assert proba.shape == (len(clinic.features), 2)
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # It learned something: the simulated alliance and progress signals rank dropouts above chance.
    assert roc_auc_score(clinic.y, fitted[kind].predict_proba(clinic.train)[:, 1]) > 0.6
    assert proba[:, 1].std() > 0


def test_unknown_kind_raises(clinic, columns):
    with pytest.raises(ValueError, match="unknown model kind"):
        make_candidate("forest", clinic.train, columns)


def test_logistic_one_hot_encodes_categoricals_and_the_session_and_scales_numbers(clinic, columns):
    pipeline = make_candidate("logistic", clinic.train, columns)
    transformers = {name: cols for name, _, cols in pipeline.named_steps["prep"].transformers}
    assert transformers["cat"] == ["gender"]
    assert transformers["session"] == ["landmark"]
    assert set(transformers["num"]) == set(columns) - {"gender", "landmark"}


# --- exact contributions -----------------------------------------------------------------------------


def test_logistic_contributions_add_up_to_the_log_odds(clinic, fitted, columns):
    pipeline = fitted["logistic"]
    X = clinic.features
    parts, bias = logistic_contributions(pipeline, X)
    assert list(parts.columns) == columns
    assert parts.index.equals(X.index)
    assert np.isfinite(parts.to_numpy()).all()
    np.testing.assert_allclose(parts.sum(axis=1).to_numpy() + bias, pipeline.decision_function(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        parts.sum(axis=1).to_numpy() + bias, logit(pipeline.predict_proba(X)[:, 1]), rtol=0, atol=1e-6
    )
    # Several features carry signal; a categorical's one-hot terms land on the categorical itself.
    assert (parts.abs().max() > 0).sum() > 5
    assert parts["gender"].abs().max() > 0


def test_lightgbm_contributions_add_up_to_the_raw_log_odds(clinic, fitted, columns):
    pipeline = fitted["lightgbm"]
    X = clinic.features
    parts, bias = lightgbm_contributions(pipeline, X)
    assert list(parts.columns) == columns
    assert parts.index.equals(X.index)
    np.testing.assert_allclose(
        parts.sum(axis=1).to_numpy() + bias, logit(pipeline.predict_proba(X)[:, 1]), rtol=0, atol=1e-6
    )
    assert (parts.abs().max() > 0).sum() > 5


def test_logistic_contribution_of_a_feature_is_its_own_term(clinic, fitted):
    """Changing one feature moves only that feature's contribution, by the change in log-odds."""
    pipeline = fitted["logistic"]
    X = clinic.features.head(50)
    changed = X.assign(srs_current=X["srs_current"].fillna(36.0) - 3.0)
    before, _ = logistic_contributions(pipeline, X)
    after, _ = logistic_contributions(pipeline, changed)
    moved = (after - before).abs().max()
    assert moved.drop("srs_current").max() == 0
    assert moved["srs_current"] > 0
    np.testing.assert_allclose(
        (after - before)["srs_current"], pipeline.decision_function(changed) - pipeline.decision_function(X), atol=1e-9
    )


# --- odd input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_unseen_categorical_level_scores_like_a_missing_one(clinic, fitted, kind):
    X = clinic.features.head(40)
    levels = [*clinic.spec.categorical_covariates["gender"], "nonbinary"]
    unseen = with_gender(X, ["nonbinary"] * len(X), levels)
    missing = with_gender(X, [None] * len(X), levels)
    p_unseen = fitted[kind].predict_proba(unseen)[:, 1]
    p_missing = fitted[kind].predict_proba(missing)[:, 1]
    assert np.isfinite(p_unseen).all()
    np.testing.assert_allclose(p_unseen, p_missing, rtol=0, atol=1e-12)
    parts, bias = contributions(kind, fitted[kind], unseen)
    np.testing.assert_allclose(parts.sum(axis=1) + bias, logit(p_unseen), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_all_nan_columns_at_scoring_time(clinic, fitted, kind):
    X = clinic.features.head(60).copy()
    srs = [c for c in X.columns if c.startswith("srs_")]
    X[srs] = np.nan
    X["gender"] = pd.Categorical([None] * len(X), categories=clinic.spec.categorical_covariates["gender"])
    p = fitted[kind].predict_proba(X)[:, 1]
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    parts, bias = contributions(kind, fitted[kind], X)
    np.testing.assert_allclose(parts.sum(axis=1) + bias, logit(p), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_all_nan_columns_at_fit_time(clinic, columns, kind):
    """A spec instrument the training data never recorded: its columns are all-NaN and carry no signal."""
    X = clinic.train.copy()
    srs = [c for c in columns if c.startswith("srs_")]
    X[srs] = np.nan
    pipeline = make_candidate(kind, X, columns, **({"n_estimators": 50} if kind == "lightgbm" else {}))
    pipeline.fit(X, clinic.y)
    p = pipeline.predict_proba(X)[:, 1]
    assert np.isfinite(p).all()
    parts, bias = contributions(kind, pipeline, X)
    np.testing.assert_allclose(parts.sum(axis=1) + bias, logit(p), atol=1e-6)
    assert (parts[srs] == 0).all().all()
    # Scoring rows that do have the (unseen-at-fit) alliance values still works.
    p_with = pipeline.predict_proba(clinic.train)[:, 1]
    assert np.isfinite(p_with).all()


@pytest.mark.parametrize("kind", KINDS)
def test_column_order_of_the_input_frame_does_not_matter(clinic, fitted, kind):
    X = clinic.features.head(200)
    rng = np.random.default_rng(0)
    shuffled = X[list(rng.permutation(X.columns))]
    assert list(shuffled.columns) != list(X.columns)
    np.testing.assert_array_equal(fitted[kind].predict_proba(shuffled), fitted[kind].predict_proba(X))
    parts, bias = contributions(kind, fitted[kind], X)
    parts_shuffled, bias_shuffled = contributions(kind, fitted[kind], shuffled)
    pd.testing.assert_frame_equal(parts_shuffled, parts)
    np.testing.assert_array_equal(bias_shuffled, bias)


@pytest.mark.parametrize("kind", KINDS)
def test_fitting_on_a_shuffled_frame_gives_the_same_model(clinic, columns, kind):
    rng = np.random.default_rng(1)
    shuffled = clinic.train[list(rng.permutation(clinic.train.columns))]
    params = {"n_estimators": 50} if kind == "lightgbm" else {}
    a = make_candidate(kind, clinic.train, columns, **params).fit(clinic.train, clinic.y)
    b = make_candidate(kind, shuffled, columns, **params).fit(shuffled, clinic.y)
    X = clinic.features.head(100)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_an_absent_column_scores_as_missing(clinic, fitted, kind):
    X = clinic.features.head(80)
    dropped = X.drop(columns=["ors_slope", "age"])
    as_nan = X.assign(ors_slope=np.nan, age=np.nan)
    np.testing.assert_array_equal(fitted[kind].predict_proba(dropped), fitted[kind].predict_proba(as_nan))


@pytest.mark.parametrize("kind", KINDS)
def test_clone_gives_an_unfitted_copy_with_the_same_settings(clinic, fitted, kind):
    copy = clone(fitted[kind])
    assert copy.get_params()["select__columns"] == fitted[kind].get_params()["select__columns"]
    with pytest.raises(NotFittedError):
        copy.predict_proba(clinic.features.head(5))


def test_column_selector_passes_exactly_its_columns_in_order():
    X = pd.DataFrame({"b": [1.0, 2.0], "a": [3.0, 4.0], "z": [5.0, 6.0]})
    selector = ColumnSelector(["a", "b", "missing"]).fit(X)
    out = selector.transform(X)
    assert list(out.columns) == ["a", "b", "missing"]
    assert out["missing"].isna().all()
    assert out["a"].tolist() == [3.0, 4.0]
    assert list(selector.get_feature_names_out()) == ["a", "b", "missing"]
