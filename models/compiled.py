"""The scorer serving and batch scoring use: a trained model rebuilt from its scorer artifact.

``CompiledModel`` reads the plain files training wrote into the MLflow model
(``models.artifact``: JSON numbers, and LightGBM's own model text) and scores a float
matrix with a handful of numpy operations, or LightGBM's booster. It never unpickles
the model nor reads scikit-learn internals, so a dependency upgrade cannot change how a
registered model scores. Training registers a model only once its artifact has given
``DropoutRiskModel``'s risks and contributions on the training rows (``models.extract``).

The input matrix has one column per ``spec.feature_columns()``, in that order.
A categorical column holds the category *code*, the position of the level
within the spec's levels, as a float; NaN (or anything that is not a valid
code) means missing or unknown, exactly what ``DropoutRiskModel.prepare`` makes
of an unseen level. ``matrix`` builds it from a feature frame (batches, tests);
``row`` from one JSON-like record without pandas (serving).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import LANDMARK, FeatureSpec, level_text
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.models.artifact import (
    ArtifactError,
    Calibration,
    LightGBMParams,
    LogisticParams,
    ScorerArtifact,
    read_artifact,
)
from dropout_risk.models.logodds import landmark_intercepts, logit
from dropout_risk.models.reference import ConceptEffects, ConceptReference, concept_effects

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


def _positions(features: list[str] | tuple[str, ...], columns: list[str]) -> list[int]:
    unknown = sorted({f for f in features if f not in columns})
    if unknown:
        raise ArtifactError(f"the scorer uses {len(unknown)} feature(s) outside its feature spec")
    return [columns.index(f) for f in features]


class _LogisticScorer:
    """A logistic model's design matrix, rebuilt from its terms, times its coefficients."""

    def __init__(self, params: LogisticParams, columns: list[str], levels: dict[str, tuple[str, ...]]):
        terms = params.terms
        features = [t.feature for t in terms]
        position = dict(zip(features, _positions(features, columns), strict=True))
        for term in terms:
            if (term.input == "category") != (term.feature in levels):
                raise ArtifactError("a logistic term does not match its feature's type in the spec")
        values = [i for i, t in enumerate(terms) if t.input == "value"]
        indicators = [i for i, t in enumerate(terms) if t.input == "missing"]
        level_terms = [i for i, t in enumerate(terms) if t.input == "level"]
        self.level_x = np.asarray([position[terms[i].feature] for i in level_terms], np.intp)
        self.level_design = np.asarray(level_terms, np.intp)
        self.level_value = np.asarray([terms[i].level for i in level_terms], dtype=float)
        self.level_fill = np.asarray([terms[i].median for i in level_terms], dtype=float)
        self.width = len(terms)
        self.used = tuple(dict.fromkeys(features))
        self.num_x = np.asarray([position[terms[i].feature] for i in values], np.intp)
        self.num_design = np.asarray(values, np.intp)
        self.medians = np.asarray([terms[i].median for i in values], dtype=float)
        self.indicator_x = np.asarray([position[terms[i].feature] for i in indicators], np.intp)
        self.indicator_design = np.asarray(indicators, np.intp)
        self.scaled = np.asarray(sorted(values + indicators), np.intp)
        self.centre = np.asarray([terms[i].centre for i in self.scaled], dtype=float)
        self.scale = np.asarray([terms[i].scale for i in self.scaled], dtype=float)
        # Per categorical feature: code -> design column (-1: none), the last entry for a missing value.
        self.categorical: list[tuple[int, np.ndarray]] = []
        for feature in dict.fromkeys(t.feature for t in terms if t.input == "category"):
            where = {t.category: i for i, t in enumerate(terms) if t.input == "category" and t.feature == feature}
            fill = params.missing_category.get(feature)
            table = [where.get(level, -1) for level in levels[feature]] + [-1 if fill is None else where.get(fill, -1)]
            self.categorical.append((position[feature], np.asarray(table, dtype=np.intp)))
        coef = np.asarray([t.coef for t in terms], dtype=float)
        self.coef_t = coef.reshape(-1, 1)  # (width, 1), as scikit-learn's decision_function uses it
        self.coef = coef
        self.intercept = np.array([params.intercept], dtype=float)
        # design column -> input feature, as a 0/1 matrix: terms @ source sums each feature's terms.
        self.source = np.zeros((self.width, len(columns)))
        self.source[np.arange(self.width), [position[f] for f in features]] = 1.0

    def design(self, X: np.ndarray) -> np.ndarray:
        design = np.zeros((X.shape[0], self.width))
        numeric = X[:, self.num_x]
        if np.isinf(numeric).any():
            raise ValueError("Input X contains infinity")  # as scikit-learn's imputer refuses it
        missing = np.isnan(numeric)
        design[:, self.num_design] = np.where(missing, self.medians, numeric)
        design[:, self.indicator_design] = np.isnan(X[:, self.indicator_x])
        design[:, self.scaled] = (design[:, self.scaled] - self.centre) / self.scale
        levels = X[:, self.level_x]
        design[:, self.level_design] = np.where(np.isnan(levels), self.level_fill, levels) == self.level_value
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
    """LightGBM's booster, loaded from its own model text, fed a numpy matrix."""

    def __init__(self, params: LightGBMParams, columns: list[str], levels: dict[str, tuple[str, ...]]):
        import lightgbm  # only a LightGBM scorer needs it (with scikit-learn and SciPy: about 1 s a server start)

        try:
            self.booster = lightgbm.Booster(model_str=params.booster)
        except Exception as exc:  # LightGBM raises its own error type, or a ValueError, on a damaged text
            raise ArtifactError(f"the LightGBM model text cannot be loaded ({type(exc).__name__})") from None
        if self.booster.num_feature() != len(params.features):
            raise ArtifactError("the LightGBM model text and scorer.json disagree on the number of features")
        selected = list(params.features)
        self.used = tuple(selected)
        self.selected_x = np.asarray(_positions(selected, columns), np.intp)
        categorical = [c for c in selected if c in levels]
        if set(params.categories) != set(categorical):
            raise ArtifactError("the booster's categorical features do not match the spec's categorical covariates")
        # The booster codes a category by its position among the categories it saw in training
        # (pandas' set_categories: a level it did not see is missing to it).
        self.recode: list[tuple[int, np.ndarray]] = []
        for column in categorical:
            where = {category: float(i) for i, category in enumerate(params.categories[column])}
            table = [where.get(level, np.nan) for level in levels[column]] + [np.nan]
            self.recode.append((selected.index(column), np.asarray(table, dtype=float)))
        self.n_columns = len(columns)

    def inputs(self, X: np.ndarray) -> np.ndarray:
        inputs = X[:, self.selected_x]
        for k, table in self.recode:
            inputs[:, k] = table[_codes(inputs[:, k], len(table) - 1)]
        return inputs

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(self.inputs(X), num_threads=1), dtype=float)

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(self.booster.predict(self.inputs(X), pred_contrib=True, num_threads=1), dtype=float)
        out = np.zeros((X.shape[0], self.n_columns))
        out[:, self.selected_x] = raw[:, :-1]
        return out, raw[:, -1]


class _Calibrator:
    """``ProbabilityCalibrator.transform`` in numpy: Platt scaling (an intercept per landmark), or isotonic."""

    def __init__(self, calibration: Calibration):
        self.method = calibration.method
        self.coef, self.intercept = calibration.coef, calibration.intercept
        self.table = dict(calibration.landmark_intercepts)
        self.x, self.y = np.asarray(calibration.x, dtype=float), np.asarray(calibration.y, dtype=float)

    @property
    def logit_slope(self) -> float:
        return self.coef if self.method == "sigmoid" else 1.0

    def logit_intercepts(self, landmark: np.ndarray) -> np.ndarray:
        """Each row's Platt intercept (its landmark's, else the pooled one); 0 for isotonic."""
        if self.method != "sigmoid":
            return np.zeros(np.shape(landmark))
        return landmark_intercepts(landmark, self.table, self.intercept)

    def __call__(self, p: np.ndarray, landmark: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float).reshape(-1)
        if self.method == "sigmoid":
            return expit(logit(p) * self.coef + self.logit_intercepts(landmark))
        # scikit-learn's IsotonicRegression(out_of_bounds="clip"): clip, then interpolate linearly.
        return np.interp(np.clip(p, self.x[0], self.x[-1]), self.x, self.y)


class CompiledModel:
    """A trained model, from its scorer artifact: risks and contributions equal to ``DropoutRiskModel``'s."""

    columns: list[str]  # == spec.feature_columns(), the order of the input matrix

    def __init__(self, artifact: ScorerArtifact):
        try:
            self.spec = FeatureSpec.from_dict(artifact.spec)
            self.trajectories = ExpectedTrajectories.from_dict(artifact.trajectories)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the feature spec or trajectories cannot be read ({type(exc).__name__})") from None
        self.kind: str = artifact.kind
        self.columns = self.spec.feature_columns()
        self._landmark = self.columns.index(LANDMARK)  # the Platt intercept depends on it
        self.levels = {c: tuple(v) for c, v in self.spec.categorical_covariates.items()}
        estimator = artifact.estimator
        self._scorer = (
            _LogisticScorer(estimator, self.columns, self.levels)
            if isinstance(estimator, LogisticParams)
            else _LightGBMScorer(estimator, self.columns, self.levels)
        )
        self._calibrator = _Calibrator(artifact.calibration)
        self.logit_slope = self._calibrator.logit_slope
        try:
            self.reference = ConceptReference.from_dict(artifact.reference)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the concept reference cannot be read ({type(exc).__name__})") from None
        self._index = {c: {level: float(i) for i, level in enumerate(self.levels[c])} for c in self.levels}

    @classmethod
    def from_directory(cls, directory: Path) -> CompiledModel:
        """The scorer in ``directory`` (the artifact's folder); ``ArtifactError`` if it cannot be read."""
        return cls(read_artifact(directory))

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
                values[j] = index.get(level_text(value), np.nan)
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

    def calibrate(self, p: np.ndarray, landmark: np.ndarray) -> np.ndarray:
        """``ProbabilityCalibrator.transform``: Platt scaling (at each row's landmark) or isotonic, in numpy."""
        return self._calibrator(p, landmark)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n,)."""
        X = self._check(X)
        if X.shape[0] == 0:
            return np.empty(0)
        return self.calibrate(self._scorer.raw_probability(X), X[:, self._landmark])

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions on the calibrated log-odds scale (n, p), and the bias (n,).

        Raw contributions times the Platt slope (1 for isotonic), as ``DropoutRiskModel.contributions``;
        features the estimator does not use get 0.
        """
        X = self._check(X)
        parts, bias = self._scorer.raw_contributions(X)
        return parts * self.logit_slope, bias * self.logit_slope

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the estimator reads (the model's features), in its order."""
        return self._scorer.used

    def concept_effects(self, X: np.ndarray) -> ConceptEffects:
        """Each row's log-odds as a baseline (the average client at its session) plus each concept's effect."""
        parts, bias = self.contributions(X)
        landmark = self._check(X)[:, self._landmark]
        intercepts = self._calibrator.logit_intercepts(landmark)
        return concept_effects(parts, bias, self.columns, landmark, self.spec, self.reference, intercepts)

    # -- history to risk (batch scoring) ---------------------------------------------------------
    def build_features(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame:
        """Landmark feature rows of validated, typed ``sessions`` with the model's spec and curves."""
        if episodes is None:
            episodes = pd.DataFrame({"client_id": pd.Series(dtype="string"), "status": pd.Series(dtype="string")})
        return build_features(sessions, episodes, self.spec, self.trajectories)

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """``DropoutRiskModel.predict_features``: calibrated probabilities of feature rows."""
        return self.predict(self.matrix(features))

    def score_history(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame:
        """``DropoutRiskModel.score_history``: the risk after every session of validated, typed ``sessions``.

        A session past the model's last landmark gets the last landmark's risk.
        """
        features = self.build_features(sessions, episodes)
        return risk_per_session(sessions, features, self.predict_features(features), self.spec.max_landmark)


def risk_per_session(
    sessions: pd.DataFrame, features: pd.DataFrame, risk: np.ndarray, max_landmark: int
) -> pd.DataFrame:
    """Each session's risk: its landmark row's; past the last landmark, the last one's (the model saw no later)."""
    by_landmark = features[["client_id", "landmark"]].assign(risk=risk)
    keys = sessions[["client_id", "session_number"]].copy()
    keys["landmark"] = np.minimum(keys["session_number"].to_numpy(), max_landmark)
    scored = keys.merge(by_landmark, on=["client_id", "landmark"], how="left", validate="many_to_one")
    return scored[["client_id", "session_number", "landmark", "risk"]]
