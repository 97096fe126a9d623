"""A numpy-only scorer equal to ``DropoutRiskModel.predict_features`` / ``.contributions``.

The packaged model goes through pandas (``prepare``) and scikit-learn's pipeline
machinery: about 10 ms to score one client and 15 ms more to explain it, nearly
all of it per-call overhead. ``CompiledModel`` reads the fitted numbers out of
the model once (imputer medians, missing-value indicators, scaler moments,
one-hot levels and coefficients of a logistic pipeline; the booster and its
pandas category mapping of a LightGBM one; the calibrator's Platt parameters)
and then scores a float matrix with a handful of numpy operations, giving the
same numbers to floating-point noise (see ``tests/models/test_compiled.py``).

The input matrix has one column per ``spec.feature_columns()``, in that order.
A categorical column holds the category *code*, the position of the level
within the spec's levels, as a float; NaN (or anything that is not a valid
code) means missing or unknown, exactly what ``DropoutRiskModel.prepare`` makes
of an unseen level. ``matrix`` builds it from a feature frame (batches, tests);
``row`` from one JSON-like record without pandas (serving).

Models it cannot reproduce exactly (a clinical rule, an unfamiliar pipeline)
make ``from_model`` raise ``ValueError``: the caller keeps the slow path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dropout_risk.models.calibration import ProbabilityCalibrator, logit
from dropout_risk.models.estimators import ColumnSelector

# A plain decimal literal: float() reads it exactly as pandas.to_numeric does. Anything else
# (thousands separators, "inf", underscores, ...) goes through pandas.to_numeric itself.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _codes(values: np.ndarray, n_levels: int) -> np.ndarray:
    """Category codes as integers; NaN, out-of-range and fractional codes become ``n_levels`` (missing)."""
    with np.errstate(invalid="ignore"):
        valid = (values >= 0) & (values < n_levels) & (values == np.floor(values))
    return np.where(valid, values, n_levels).astype(np.intp)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or other non-scalar: not missing, and not a number either
        return False


class _LogisticScorer:
    """The design matrix of a fitted ``make_logistic`` pipeline, rebuilt in numpy."""

    def __init__(self, pipeline: Pipeline, columns: list[str], levels: dict[str, tuple[str, ...]]):
        selected = _selected_columns(pipeline, columns)
        prep = pipeline.named_steps.get("prep")
        model = pipeline.named_steps.get("model")
        if not isinstance(prep, ColumnTransformer) or not isinstance(model, LogisticRegression):
            raise ValueError(
                "a logistic model must be Pipeline[select, prep: ColumnTransformer, model: LogisticRegression]"
            )
        if len(model.classes_) != 2 or model.coef_.shape[0] != 1:
            raise ValueError("only a binary logistic regression can be compiled")
        if getattr(prep, "sparse_output_", False):
            raise ValueError("a sparse design matrix is not supported")
        position = {c: i for i, c in enumerate(columns)}

        self.num_x: list[int] = []  # input (matrix) column of each numeric design input
        self.num_design: list[int] = []  # its design column
        medians: list[float] = []
        indicator_x: list[int] = []  # input column of each missing-value indicator
        indicator_design: list[int] = []
        centre: dict[int, float] = {}
        scale: dict[int, float] = {}
        self.categorical: list[tuple[int, np.ndarray]] = []  # (input column, code -> design column or -1)
        sources: list[str] = []  # input feature behind each design column
        names: list[str] = []  # expected get_feature_names_out, to check the order
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
            block_names: list[str] = []
            if rest and isinstance(rest[-1], OneHotEncoder):
                if len(rest) != 1 or imputer.add_indicator:
                    raise ValueError(f"categorical block {block!r} must be SimpleImputer -> OneHotEncoder")
                encoder: OneHotEncoder = rest[0]
                if (
                    encoder.drop_idx_ is not None
                    or getattr(encoder, "_infrequent_enabled", False)
                    or encoder.handle_unknown != "ignore"
                ):
                    raise ValueError("only OneHotEncoder(handle_unknown='ignore') without drop/infrequent levels")
                for column, fill, categories in zip(
                    block_columns, imputer.statistics_, encoder.categories_, strict=True
                ):
                    if column not in levels:
                        raise ValueError(f"{column!r} is one-hot encoded but is not a categorical covariate")
                    where = {category: len(sources) + i for i, category in enumerate(categories)}
                    table = [where.get(level, -1) for level in levels[column]] + [where.get(fill, -1)]
                    self.categorical.append((position[column], np.asarray(table, dtype=np.intp)))
                    sources += [column] * len(categories)
                    block_names += [f"{column}_{category}" for category in categories]
            else:
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
                for k, column in enumerate(block_columns):
                    self.num_x.append(position[column])
                    self.num_design.append(len(sources))
                    medians.append(statistics[k])
                    centre[len(sources)], scale[len(sources)] = mean[k], std[k]
                    sources.append(column)
                for j, k in enumerate(indicated):
                    column = block_columns[k]
                    indicator_x.append(position[column])
                    indicator_design.append(len(sources))
                    d = len(block_columns) + j
                    centre[len(sources)], scale[len(sources)] = mean[d], std[d]
                    sources.append(column)
                block_names += [*block_columns, *(f"missingindicator_{block_columns[k]}" for k in indicated)]
            if prep.verbose_feature_names_out:
                block_names = [f"{block}__{name}" for name in block_names]
            names += block_names
        if names != [str(n) for n in prep.get_feature_names_out()] or len(sources) != model.coef_.shape[1]:
            raise ValueError("the design matrix of this pipeline is not laid out as expected")

        self.width = len(sources)
        self.num_x, self.num_design = np.asarray(self.num_x, np.intp), np.asarray(self.num_design, np.intp)
        self.medians = np.asarray(medians, dtype=float)
        self.indicator_x = np.asarray(indicator_x, np.intp)
        self.indicator_design = np.asarray(indicator_design, np.intp)
        # Scaled design columns (numeric and indicators) are contiguous from 0 in a make_logistic pipeline;
        # keep them general anyway: a column index list with its centre and scale.
        self.scaled = np.asarray(sorted(centre), np.intp)
        self.centre = np.asarray([centre[i] for i in self.scaled], dtype=float)
        self.scale = np.asarray([scale[i] for i in self.scaled], dtype=float)
        self.coef_t = np.array(model.coef_.T, dtype=float)  # (width, 1), as sklearn's decision_function uses it
        self.coef = np.ascontiguousarray(model.coef_[0], dtype=float)
        self.intercept = np.array(model.intercept_, dtype=float)
        # design column -> input feature, as a 0/1 matrix: terms @ source sums each feature's terms.
        self.source = np.zeros((self.width, len(columns)))
        self.source[np.arange(self.width), [position[s] for s in sources]] = 1.0

    def design(self, X: np.ndarray) -> np.ndarray:
        design = np.zeros((X.shape[0], self.width))
        numeric = X[:, self.num_x]
        if np.isinf(numeric).any():
            raise ValueError("Input X contains infinity")  # as scikit-learn's imputer refuses it
        missing = np.isnan(numeric)
        design[:, self.num_design] = np.where(missing, self.medians, numeric)
        design[:, self.indicator_design] = np.isnan(X[:, self.indicator_x])
        design[:, self.scaled] = (design[:, self.scaled] - self.centre) / self.scale
        for column, table in self.categorical:
            active = table[_codes(X[:, column], len(table) - 1)]
            rows = np.flatnonzero(active >= 0)
            design[rows, active[rows]] = 1.0
        return design

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        decision = (self.design(X) @ self.coef_t + self.intercept).reshape(-1)
        return expit(decision)

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Only one or two terms of a feature are non-zero, so the 0/1 product sums them exactly.
        terms = self.design(X) * self.coef
        return terms @ self.source, np.full(X.shape[0], self.intercept[0])


class _LightGBMScorer:
    """The fitted booster of a ``make_lightgbm`` pipeline, fed a numpy matrix."""

    def __init__(self, pipeline: Pipeline, columns: list[str], levels: dict[str, tuple[str, ...]]):
        selected = _selected_columns(pipeline, columns)
        model = pipeline.named_steps.get("model")
        booster = getattr(model, "booster_", None)
        if booster is None or getattr(model, "objective_", None) != "binary" or callable(model.objective):
            raise ValueError("a lightgbm model must be a fitted binary LGBMClassifier")
        position = {c: i for i, c in enumerate(columns)}
        self.booster = booster
        self.selected_x = np.asarray([position[c] for c in selected], np.intp)
        # At prediction LightGBM re-codes each pandas categorical column (in column order) against the
        # categories it saw in training (set_categories: a level it did not see becomes NaN).
        categorical = [c for c in selected if c in levels]
        trained = booster.pandas_categorical
        if trained is None:
            trained = [list(levels[c]) for c in categorical]
        if len(trained) != len(categorical):
            raise ValueError("the booster's categorical features do not match the spec's categorical covariates")
        self.recode: list[tuple[int, np.ndarray]] = []
        for column, categories in zip(categorical, trained, strict=True):
            where = {category: float(i) for i, category in enumerate(categories)}
            table = [where.get(level, np.nan) for level in levels[column]] + [np.nan]
            self.recode.append((selected.index(column), np.asarray(table, dtype=float)))
        self.n_columns = len(columns)

    def inputs(self, X: np.ndarray) -> np.ndarray:
        inputs = X[:, self.selected_x]
        for k, table in self.recode:
            inputs[:, k] = table[_codes(inputs[:, k], len(table) - 1)]
        return inputs

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(self.inputs(X), num_threads=1)

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self.booster.predict(self.inputs(X), pred_contrib=True, num_threads=1)
        out = np.zeros((X.shape[0], self.n_columns))
        out[:, self.selected_x] = raw[:, :-1]
        return out, raw[:, -1]


_SCORERS = {"logistic": _LogisticScorer, "lightgbm": _LightGBMScorer}


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


class CompiledModel:
    """Numpy-only scorer equal to DropoutRiskModel.predict_features / .contributions (to 1e-12)."""

    columns: list[str]  # == model.spec.feature_columns(), the order of the input matrix

    def __init__(
        self,
        *,
        kind: str,
        columns: list[str],
        levels: dict[str, tuple[str, ...]],
        scorer: _LogisticScorer | _LightGBMScorer,
        calibrator: ProbabilityCalibrator,
    ):
        self.kind = kind
        self.columns = list(columns)
        self.levels = {c: tuple(v) for c, v in levels.items()}
        self._scorer = scorer
        self._method = calibrator.method
        self.logit_slope = calibrator.logit_slope
        if self._method == "sigmoid":
            platt = calibrator.model_
            if len(platt.classes_) != 2 or platt.coef_.shape != (1, 1):
                raise ValueError("the Platt calibrator must be a binary logistic regression on one input")
            self._platt_coef = float(platt.coef_[0, 0])
            self._platt_intercept = float(platt.intercept_[0])
        else:
            self._isotonic = calibrator.model_
        self._numeric = [j for j, c in enumerate(self.columns) if c not in self.levels]
        self._index = {c: {level: float(i) for i, level in enumerate(self.levels[c])} for c in self.levels}

    @classmethod
    def from_model(cls, model: Any) -> CompiledModel:
        """Compile a logistic or LightGBM ``DropoutRiskModel``; ``ValueError`` for anything else."""
        scorer_type = _SCORERS.get(getattr(model, "kind", None))
        if scorer_type is None:
            raise ValueError(f"a {getattr(model, 'kind', None)!r} model cannot be compiled")
        calibrator = model.calibrator
        if not isinstance(calibrator, ProbabilityCalibrator) or calibrator.method not in ("sigmoid", "isotonic"):
            raise ValueError("only a ProbabilityCalibrator (sigmoid or isotonic) can be compiled")
        spec = model.spec
        columns = spec.feature_columns()
        levels = dict(spec.categorical_covariates)
        return cls(
            kind=model.kind,
            columns=columns,
            levels=levels,
            scorer=scorer_type(model.estimator, columns, levels),
            calibrator=calibrator,
        )

    # -- inputs --------------------------------------------------------------------------------
    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """Feature rows (typed, or JSON-like as ``DropoutRiskModel.prepare`` accepts them) -> input matrix."""
        frame = features.reindex(columns=self.columns)
        out = np.empty((len(frame), len(self.columns)))
        for j, column in enumerate(self.columns):
            values = frame[column]
            index = self._index.get(column)
            if index is None:
                out[:, j] = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
            else:  # as prepare: the text of each value, NaN unless it is one of the spec's levels
                values = values.astype("object").where(values.notna())
                codes = values.map(lambda v, index=index: np.nan if _is_missing(v) else index.get(str(v), np.nan))
                out[:, j] = codes.to_numpy(dtype=float)
        return out

    def row(self, record: Mapping[str, Any]) -> np.ndarray:
        """One JSON-like record (absent keys, None, numbers, numeric text, category text) -> a (1, p) matrix.

        Equal to ``matrix`` of a one-row frame of that record; without pandas for the common values.
        """
        out = np.full((1, len(self.columns)), np.nan)
        values = out[0]
        for j, column in enumerate(self.columns):
            value = record.get(column)
            if _is_missing(value):
                continue
            index = self._index.get(column)
            if index is not None:
                values[j] = index.get(str(value), np.nan)
            elif isinstance(value, bool | int | float | np.number):
                values[j] = float(value)
            elif isinstance(value, str) and _DECIMAL.fullmatch(value):
                values[j] = float(value)
            else:
                values[j] = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype("float64")[0]
        return out

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.columns):
            raise ValueError(f"expected a matrix with {len(self.columns)} columns, got shape {X.shape}")
        return X

    # -- scores --------------------------------------------------------------------------------
    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        """The estimator's uncalibrated probability (``DropoutRiskModel.raw_probability``)."""
        return self._scorer.raw_probability(self._check(X))

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """``ProbabilityCalibrator.transform``: Platt scaling in numpy, or the fitted isotonic regression."""
        if self._method == "sigmoid":
            return expit(logit(p) * self._platt_coef + self._platt_intercept)
        return self._isotonic.predict(np.asarray(p, dtype=float))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n,)."""
        X = self._check(X)
        if X.shape[0] == 0:
            return np.empty(0)
        return self.calibrate(self._scorer.raw_probability(X))

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions on the calibrated log-odds scale (n, p), and the bias (n,).

        Raw contributions times the Platt slope (1 for isotonic), as ``DropoutRiskModel.contributions``;
        features the estimator does not use get 0.
        """
        X = self._check(X)
        parts, bias = self._scorer.raw_contributions(X)
        return parts * self.logit_slope, bias * self.logit_slope

    def discrepancy(self, model: Any, features: pd.DataFrame) -> dict[str, float]:
        """Max abs differences from ``model`` (the one compiled) on ``features``: a check before trusting it."""
        X = self.matrix(features)
        expected = model.contributions(features)
        parts, bias = self.contributions(X)
        return {
            "predict": float(np.max(np.abs(self.predict(X) - model.predict_features(features)), initial=0.0)),
            "contributions": float(np.max(np.abs(parts - expected[self.columns].to_numpy()), initial=0.0)),
            "bias": float(np.max(np.abs(bias - expected["bias"].to_numpy()), initial=0.0)),
        }
