"""The candidate estimators: scikit-learn pipelines over a landmark feature frame.

Each takes the whole feature frame and selects its own columns, so one frame
serves every candidate and every feature set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

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


def make_logistic(numeric: Sequence[str], categorical: Sequence[str], C: float = 0.1) -> Pipeline:
    """Impute (with missing-value indicators), scale, L2-regularised logistic regression.

    Missingness is informative here (an outcome measure not given, an alliance
    never recorded), hence ``add_indicator``.
    """
    transformers = [
        (
            "num",
            make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
            ),
            list(numeric),
        )
    ]
    if categorical:
        transformers.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(categorical),
            )
        )
    return Pipeline(
        [
            ("select", ColumnSelector([*numeric, *categorical])),
            ("prep", ColumnTransformer(transformers, verbose_feature_names_out=False)),
            ("model", LogisticRegression(C=C, max_iter=5000)),
        ]
    )


def make_lightgbm(columns: Sequence[str], **params) -> Pipeline:
    """LightGBM on the raw columns: it handles NaN and pandas categoricals natively."""
    return Pipeline(
        [
            ("select", ColumnSelector(list(columns))),
            ("model", LGBMClassifier(**{**LIGHTGBM_DEFAULTS, **params})),
        ]
    )


def make_candidate(kind: str, X: pd.DataFrame, columns: Sequence[str], **params) -> Pipeline:
    numeric, categorical = _split_kinds(X, columns)
    if kind == "logistic":
        return make_logistic(numeric, categorical, **params)
    if kind == "lightgbm":
        return make_lightgbm(columns, **params)
    raise ValueError(f"unknown model kind {kind!r}")


def logistic_contributions(pipeline: Pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-input-feature log-odds contributions of a fitted logistic pipeline, and the bias.

    Scaled numeric columns have training mean 0, so coefficient x value is the
    contribution relative to an average training row; a missing-value indicator
    and one-hot levels are added to the feature they came from.
    """
    selected = pipeline.named_steps["select"].transform(X)
    prep: ColumnTransformer = pipeline.named_steps["prep"]
    model: LogisticRegression = pipeline.named_steps["model"]
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
