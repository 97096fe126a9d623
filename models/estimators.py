"""The candidate estimators: scikit-learn pipelines over a landmark feature frame.

Each takes the whole feature frame and selects its own columns, so one frame
serves every candidate and every feature set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dropout_risk.features.spec import LANDMARK
from dropout_risk.models.signed_logistic import SignConstrainedLogisticRegression

# Sound defaults for a few thousand clients x 8 landmarks: shallow trees, strong
# leaf minimums and row/column subsampling keep a booster from memorising clients.
LIGHTGBM_DEFAULTS = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "verbose": -1,
    "n_jobs": 1,
}


class ColumnSelector(TransformerMixin, BaseEstimator):
    """Pass through exactly ``columns`` of a DataFrame, in that order (missing ones as NaN)."""

    def __init__(self, columns: Sequence[str] = ()):
        self.columns = columns

    def fit(self, X: pd.DataFrame, y=None):
        self.feature_names_in_ = np.asarray(list(self.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.reindex(columns=list(self.columns))

    def get_feature_names_out(self, input_features=None):
        return np.asarray(list(self.columns), dtype=object)


def _split_kinds(X: pd.DataFrame, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    categorical = [
        c
        for c in columns
        if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object or pd.api.types.is_string_dtype(X[c])
    ]
    return [c for c in columns if c not in categorical], categorical


def make_logistic(
    numeric: Sequence[str], categorical: Sequence[str], C: float = 0.1, directions: Mapping[str, int] | None = None
) -> Pipeline:
    """Session number one-hot, numbers imputed (with missing-value indicators) and scaled, logistic regression.

    The session number is a category: the dropout hazard is not linear in it, and a per-session
    intercept keeps each session's risks calibrated. Missingness is informative (an outcome
    measure not given, an alliance never recorded), hence ``add_indicator``. Coefficients keep
    the signs of ``directions`` (``SignConstrainedLogisticRegression``); indicators and
    categories are free. The design matrix is a DataFrame so columns meet their signs by name.
    """
    session = [c for c in numeric if c == LANDMARK]
    numeric = [c for c in numeric if c != LANDMARK]
    transformers: list[tuple[str, Pipeline, list[str]]] = []
    if session:
        transformers.append(("session", _one_hot(SimpleImputer(strategy="most_frequent")), session))
    transformers.append(
        (
            "num",
            make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
            ),
            list(numeric),
        )
    )
    if categorical:
        missing = SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)
        transformers.append(("cat", _one_hot(missing), list(categorical)))
    prep = ColumnTransformer(transformers, verbose_feature_names_out=False).set_output(transform="pandas")
    signs = {c: s for c, s in (directions or {}).items() if c in numeric and s}
    return Pipeline(
        [
            ("select", ColumnSelector([*session, *numeric, *categorical])),
            ("prep", prep),
            ("model", SignConstrainedLogisticRegression(C=C, signs=signs)),
        ]
    )


def _one_hot(imputer: SimpleImputer) -> Pipeline:
    return make_pipeline(imputer, OneHotEncoder(handle_unknown="ignore", sparse_output=False))


def make_lightgbm(columns: Sequence[str], directions: Mapping[str, int] | None = None, **params) -> Pipeline:
    """LightGBM on the raw columns (it handles NaN and pandas categoricals), monotone in ``directions``."""
    monotone = [int((directions or {}).get(c, 0)) for c in columns]
    constraints = {"monotone_constraints": monotone, "monotone_constraints_method": "advanced"} if any(monotone) else {}
    return Pipeline(
        [
            ("select", ColumnSelector(list(columns))),
            ("model", LGBMClassifier(**{**LIGHTGBM_DEFAULTS, **constraints, **params})),
        ]
    )


def make_candidate(
    kind: str, X: pd.DataFrame, columns: Sequence[str], directions: Mapping[str, int] | None = None, **params
) -> Pipeline:
    """An unfitted candidate over ``columns``; ``directions`` (column -> +1/-1/0) constrain its effects."""
    numeric, categorical = _split_kinds(X, columns)
    if kind == "logistic":
        return make_logistic(numeric, categorical, directions=directions, **params)
    if kind == "lightgbm":
        return make_lightgbm(columns, directions, **params)
    raise ValueError(f"unknown model kind {kind!r}")


def logistic_contributions(pipeline: Pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-input-feature log-odds contributions of a fitted logistic pipeline, and the bias.

    Scaled numeric columns have training mean 0, so coefficient x value is the
    contribution relative to an average training row; a missing-value indicator
    and one-hot levels are added to the feature they came from.
    """
    selected = pipeline.named_steps["select"].transform(X)
    prep: ColumnTransformer = pipeline.named_steps["prep"]
    model: SignConstrainedLogisticRegression = pipeline.named_steps["model"]
    design = prep.transform(selected)
    design = design.toarray() if hasattr(design, "toarray") else np.asarray(design)
    terms = design * model.coef_[0]
    out = pd.DataFrame(0.0, index=X.index, columns=list(selected.columns))
    for position, source in enumerate(_design_sources(prep, list(selected.columns))):
        out[source] += terms[:, position]
    return out, np.full(len(X), model.intercept_[0])


def _design_sources(prep: ColumnTransformer, inputs: list[str]) -> list[str]:
    """Map each design-matrix column back to the input feature it was derived from."""
    by_length = sorted(inputs, key=len, reverse=True)
    sources = []
    for name in prep.get_feature_names_out():
        name = str(name).removeprefix("missingindicator_")
        sources.append(name if name in inputs else next(c for c in by_length if name.startswith(f"{c}_")))
    return sources


def lightgbm_contributions(pipeline: Pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """LightGBM's exact TreeSHAP contributions (pred_contrib) on the raw log-odds scale, and the bias."""
    selected = pipeline.named_steps["select"].transform(X)
    raw = pipeline.named_steps["model"].predict(selected, pred_contrib=True)
    return pd.DataFrame(raw[:, :-1], index=X.index, columns=list(selected.columns)), raw[:, -1]
