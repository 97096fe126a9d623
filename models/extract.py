"""At training: a fitted ``DropoutRiskModel``'s numbers, out of scikit-learn and LightGBM, into a scorer artifact.

This is the one place that reads the fitted estimators' internals (``ColumnTransformer.transformers_``,
imputer statistics, scaler moments, one-hot categories, coefficients; the booster and its pandas
category mapping; the calibrator's parameters), and it runs once, before the model is registered,
against the library versions the model was fitted with. ``write_verified_artifact`` then reads the
written files back as serving will and refuses a model whose artifact does not give its risks and
contributions on the training rows.

Models it cannot reproduce exactly (a clinical rule, an unfamiliar pipeline) raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dropout_risk.models.artifact import (
    Calibration,
    LightGBMParams,
    LogisticParams,
    ScorerArtifact,
    Term,
    write_artifact,
)
from dropout_risk.models.calibration import ProbabilityCalibrator
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.estimators import ColumnSelector
from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.models.signed_logistic import SignConstrainedLogisticRegression

TOLERANCE = 1e-9  # max |difference| of probabilities and contributions allowed between artifact and model


class ArtifactMismatchError(ValueError):
    """The scorer artifact would score differently from the fitted model: it must not be registered."""


def extract(model: DropoutRiskModel) -> ScorerArtifact:
    """The scorer artifact of a logistic or LightGBM model; ``ValueError`` for anything else."""
    if model.kind not in ("logistic", "lightgbm"):
        raise ValueError(f"a {model.kind!r} model cannot be compiled")
    spec = model.spec
    columns = spec.feature_columns()
    levels = {c: tuple(v) for c, v in spec.categorical_covariates.items()}
    return ScorerArtifact(
        kind="logistic" if model.kind == "logistic" else "lightgbm",
        spec=spec.to_dict(),
        trajectories=model.trajectories.to_dict(),
        calibration=_calibration(model.calibrator),
        estimator=(
            _logistic(model.estimator, columns, levels)
            if model.kind == "logistic"
            else _lightgbm(model.estimator, columns, levels)
        ),
        reference=model.reference.to_dict(),
    )


def compile_model(model: DropoutRiskModel) -> CompiledModel:
    """The scorer serving would build from this model's artifact (in memory: no files)."""
    return CompiledModel(extract(model))


def discrepancy(compiled: CompiledModel, model: DropoutRiskModel, features: pd.DataFrame) -> dict[str, float]:
    """Max abs differences between the compiled scorer and the model on ``features``."""
    X = compiled.matrix(features)
    expected = model.contributions(features)
    parts, bias = compiled.contributions(X)
    return {
        "predict": float(np.max(np.abs(compiled.predict(X) - model.predict_features(features)), initial=0.0)),
        "contributions": float(np.max(np.abs(parts - expected[compiled.columns].to_numpy()), initial=0.0)),
        "bias": float(np.max(np.abs(bias - expected["bias"].to_numpy()), initial=0.0)),
    }


def write_verified_artifact(model: DropoutRiskModel, rows: pd.DataFrame, directory: Path) -> Path:
    """Write the model's scorer artifact into ``directory``, read it back and check it on ``rows``.

    ``ArtifactMismatchError`` if the files do not give the model's probabilities and contributions
    (within ``TOLERANCE``) on every row: a model is never registered with a scorer that disagrees.
    """
    if len(rows) == 0:
        raise ValueError("no feature rows to check the scorer artifact on")
    write_artifact(extract(model), directory)
    gaps = discrepancy(CompiledModel.from_directory(directory), model, rows)
    if not max(gaps.values()) <= TOLERANCE:  # `not <=`: a NaN difference fails too
        found = ", ".join(f"{name} {gap:.3g}" for name, gap in gaps.items())
        raise ArtifactMismatchError(
            f"the scorer artifact does not reproduce the fitted {model.kind} model on {len(rows)} training rows "
            f"(max |difference|: {found}; allowed {TOLERANCE:g}): not registering it"
        )
    return directory


# --- the calibrator ------------------------------------------------------------------------------------


def _calibration(calibrator: Any) -> Calibration:
    if not isinstance(calibrator, ProbabilityCalibrator):
        raise ValueError("only a ProbabilityCalibrator (sigmoid or isotonic) can be compiled")
    if calibrator.method == "sigmoid":
        table = {int(k): float(b) for k, b in calibrator.landmark_intercepts_.items()}
        numbers = [calibrator.logit_slope, calibrator.logit_intercept, *table.values()]
        if not all(math.isfinite(v) for v in numbers) or any(k < 1 for k in table):
            raise ValueError("the Platt calibrator's slope and intercepts must be finite, its landmarks >= 1")
        return Calibration(
            "sigmoid", coef=calibrator.logit_slope, intercept=calibrator.logit_intercept, landmark_intercepts=table
        )
    fitted = calibrator.model_
    if not isinstance(fitted, IsotonicRegression) or fitted.out_of_bounds != "clip":
        raise ValueError("the isotonic calibrator must be an IsotonicRegression(out_of_bounds='clip')")
    x, y = np.asarray(fitted.X_thresholds_, dtype=float), np.asarray(fitted.y_thresholds_, dtype=float)
    if x[0] != fitted.X_min_ or x[-1] != fitted.X_max_:
        raise ValueError("the isotonic thresholds do not span the calibrator's input range")
    return Calibration("isotonic", x=tuple(x.tolist()), y=tuple(y.tolist()))


# --- a logistic pipeline -------------------------------------------------------------------------------


def _logistic(pipeline: Any, columns: list[str], levels: dict[str, tuple[str, ...]]) -> LogisticParams:
    selected = _selected_columns(pipeline, columns)
    prep = pipeline.named_steps.get("prep")
    model = pipeline.named_steps.get("model")
    if not isinstance(prep, ColumnTransformer) or not isinstance(
        model, LogisticRegression | SignConstrainedLogisticRegression
    ):
        raise ValueError(
            "a logistic model must be Pipeline[select, prep: ColumnTransformer, model: a logistic regression]"
        )
    if len(model.classes_) != 2 or model.coef_.shape[0] != 1:
        raise ValueError("only a binary logistic regression can be compiled")
    if getattr(prep, "sparse_output_", False):
        raise ValueError("a sparse design matrix is not supported")
    terms: list[Term] = []
    names: list[str] = []  # expected get_feature_names_out, to check the order
    missing_category: dict[str, str] = {}
    for block, transformer, block_columns in prep.transformers_:
        if transformer == "drop" or (block == "remainder" and len(_as_list(block_columns)) == 0):
            continue
        block_columns = _as_list(block_columns)
        if not all(isinstance(c, str) and c in selected for c in block_columns):
            raise ValueError(f"block {block!r} must name selected columns")
        steps = list(transformer.named_steps.values()) if isinstance(transformer, Pipeline) else [transformer]
        imputer, *rest = steps
        if not isinstance(imputer, SimpleImputer) or not _nan_marks_missing(imputer):
            raise ValueError(f"block {block!r} must start with a SimpleImputer of NaN")
        if rest and isinstance(rest[-1], OneHotEncoder) and not any(c in levels for c in block_columns):
            block_terms = _level_terms(block, imputer, rest, block_columns)
        elif rest and isinstance(rest[-1], OneHotEncoder):
            block_terms = _categorical_terms(block, imputer, rest, block_columns, levels, missing_category)
        else:
            block_terms = _numeric_terms(block, imputer, rest, block_columns, levels)
        block_names = [_design_name(term) for term in block_terms]
        if prep.verbose_feature_names_out:
            block_names = [f"{block}__{name}" for name in block_names]
        terms += block_terms
        names += block_names
    if names != [str(n) for n in prep.get_feature_names_out()] or len(terms) != model.coef_.shape[1]:
        raise ValueError("the design matrix of this pipeline is not laid out as expected")
    coef = [float(w) for w in model.coef_[0]]
    return LogisticParams(
        terms=tuple(replace(term, coef=w) for term, w in zip(terms, coef, strict=True)),
        intercept=float(model.intercept_[0]),
        missing_category=missing_category,
    )


def _categorical_terms(
    block: str,
    imputer: SimpleImputer,
    rest: list,
    block_columns: list[str],
    levels: dict[str, tuple[str, ...]],
    missing_category: dict[str, str],
) -> list[Term]:
    if len(rest) != 1 or imputer.add_indicator:
        raise ValueError(f"categorical block {block!r} must be SimpleImputer -> OneHotEncoder")
    encoder: OneHotEncoder = rest[0]
    if not _plain_one_hot(encoder):
        raise ValueError("only OneHotEncoder(handle_unknown='ignore') without drop/infrequent levels")
    terms = []
    for column, fill, categories in zip(block_columns, imputer.statistics_, encoder.categories_, strict=True):
        if column not in levels:
            raise ValueError(f"{column!r} is one-hot encoded but is not a categorical covariate")
        if not isinstance(fill, str) or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"the categories of {column!r} must be text")
        missing_category[column] = fill
        terms += [Term(column, "category", coef=0.0, category=c) for c in categories]
    return terms


def _level_terms(block: str, imputer: SimpleImputer, rest: list, block_columns: list[str]) -> list[Term]:
    """A numeric column one-hot encoded by its values (the session number as a category)."""
    encoder = rest[0]
    if len(rest) != 1 or imputer.add_indicator or not _plain_one_hot(encoder):
        raise ValueError(f"level block {block!r} must be SimpleImputer -> OneHotEncoder(handle_unknown='ignore')")
    terms = []
    for column, fill, categories in zip(block_columns, imputer.statistics_, encoder.categories_, strict=True):
        if not all(isinstance(c, int | float | np.number) and not isinstance(c, bool) for c in [fill, *categories]):
            raise ValueError(f"the levels of {column!r} must be numbers")
        terms += [
            Term(column, "level", coef=0.0, category=str(c), level=float(c), median=float(fill)) for c in categories
        ]
    return terms


def _plain_one_hot(encoder: OneHotEncoder) -> bool:
    return (
        encoder.drop_idx_ is None
        and not getattr(encoder, "_infrequent_enabled", False)
        and encoder.handle_unknown == "ignore"
    )


def _numeric_terms(
    block: str, imputer: SimpleImputer, rest: list, block_columns: list[str], levels: dict[str, tuple[str, ...]]
) -> list[Term]:
    scaler = rest[0] if rest else None
    if len(rest) > 1 or (scaler is not None and not isinstance(scaler, StandardScaler)):
        raise ValueError(f"numeric block {block!r} must be SimpleImputer [-> StandardScaler]")
    statistics = np.asarray(imputer.statistics_, dtype=float)
    if np.isnan(statistics).any():
        raise ValueError("an imputer that drops empty features is not supported")
    for column in block_columns:
        if column in levels:
            raise ValueError(f"{column!r} is a categorical covariate in a numeric block")
    indicated = list(imputer.indicator_.features_) if imputer.add_indicator else []
    width = len(block_columns) + len(indicated)
    mean = scaler.mean_ if scaler is not None and scaler.with_mean else np.zeros(width)
    std = scaler.scale_ if scaler is not None and scaler.with_std else np.ones(width)
    values = [
        Term(column, "value", coef=0.0, median=float(statistics[k]), centre=float(mean[k]), scale=float(std[k]))
        for k, column in enumerate(block_columns)
    ]
    indicators = [
        Term(block_columns[k], "missing", coef=0.0, centre=float(mean[d]), scale=float(std[d]))
        for d, k in enumerate(indicated, start=len(block_columns))
    ]
    return values + indicators


def _design_name(term: Term) -> str:
    """The name scikit-learn gives the term's design column (without the block prefix)."""
    if term.input == "missing":
        return f"missingindicator_{term.feature}"
    if term.input in ("category", "level"):
        return f"{term.feature}_{term.category}"
    return term.feature


# --- a LightGBM pipeline -------------------------------------------------------------------------------


def _lightgbm(pipeline: Any, columns: list[str], levels: dict[str, tuple[str, ...]]) -> LightGBMParams:
    selected = _selected_columns(pipeline, columns)
    model = pipeline.named_steps.get("model")
    booster = getattr(model, "booster_", None)
    if booster is None or getattr(model, "objective_", None) != "binary" or callable(model.objective):
        raise ValueError("a lightgbm model must be a fitted binary LGBMClassifier")
    # At prediction LightGBM re-codes each pandas categorical column (in column order) against the
    # categories it saw in training: that mapping is what the artifact keeps.
    categorical = [c for c in selected if c in levels]
    trained = booster.pandas_categorical
    if trained is None:
        trained = [list(levels[c]) for c in categorical]
    if len(trained) != len(categorical):
        raise ValueError("the booster's categorical features do not match the spec's categorical covariates")
    categories = {}
    for column, seen in zip(categorical, trained, strict=True):
        if not all(isinstance(c, str) for c in seen):
            raise ValueError(f"the categories of {column!r} must be text")
        categories[column] = tuple(seen)
    return LightGBMParams(features=tuple(selected), categories=categories, booster=booster.model_to_string())


# --- shared checks ------------------------------------------------------------------------------------


def _as_list(columns: Any) -> list:
    if isinstance(columns, str) or not isinstance(columns, Sequence | np.ndarray):
        raise ValueError("column blocks must be lists of column names")
    return list(columns)


def _nan_marks_missing(imputer: SimpleImputer) -> bool:
    return isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)


def _selected_columns(pipeline: Any, columns: list[str]) -> list[str]:
    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline.named_steps.get("select"), ColumnSelector):
        raise ValueError("the estimator must be a Pipeline starting with a ColumnSelector named 'select'")
    selected = list(pipeline.named_steps["select"].columns)
    unknown = [c for c in selected if c not in columns]
    if unknown:
        raise ValueError(f"the estimator uses columns outside the feature spec: {unknown}")
    return selected
