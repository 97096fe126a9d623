"""The packaged model MLflow stores and serving loads: everything from history to calibrated risk.

It carries the feature spec (instruments with their ranges, cutoffs and
reliable-change amounts; covariates and their levels), the expected-trajectory
curves fitted on the training clients, the fitted estimator and its
calibrator. Through pyfunc it takes landmark feature rows and returns
calibrated probabilities, never labels; ``score_history`` goes from raw
sessions to a risk per session with the same ``features`` code as training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.models.calibration import ProbabilityCalibrator
from dropout_risk.models.compiled import risk_per_session
from dropout_risk.models.estimators import lightgbm_contributions, logistic_contributions
from dropout_risk.models.reference import ConceptEffects, ConceptReference, concept_effects, fit_reference

RISK = "risk"
CONTRIBUTION_PREFIX = "contrib__"
BIAS = f"{CONTRIBUTION_PREFIX}bias"


class DropoutRiskModel(PythonModel):
    """A calibrated dropout-risk model with its own feature definition."""

    def __init__(
        self,
        *,
        spec: FeatureSpec,
        trajectories: ExpectedTrajectories,
        kind: str,
        estimator: Any,
        calibrator: ProbabilityCalibrator,
        columns: list[str],
        metadata: dict | None = None,
    ):
        # Plain dicts survive pickling across versions of the dataclasses.
        self.spec_dict = spec.to_dict()
        self.trajectories_dict = trajectories.to_dict()
        self.kind = kind
        self.estimator = estimator
        self.calibrator = calibrator
        self.columns = list(columns)
        self.metadata = dict(metadata or {})
        self.reference_dict: dict | None = None  # set by fit_reference, once the estimator is fitted

    # -- what the model knows ------------------------------------------------------------
    @property
    def spec(self) -> FeatureSpec:
        if getattr(self, "_spec", None) is None:
            self._spec = FeatureSpec.from_dict(self.spec_dict)
        return self._spec

    @property
    def trajectories(self) -> ExpectedTrajectories:
        if getattr(self, "_trajectories", None) is None:
            self._trajectories = ExpectedTrajectories.from_dict(self.trajectories_dict)
        return self._trajectories

    @property
    def reference(self) -> ConceptReference:
        if getattr(self, "reference_dict", None) is None:
            raise ValueError("the model has no concept reference yet: call fit_reference on its training rows")
        return ConceptReference.from_dict(self.reference_dict)  # type: ignore[arg-type]  # checked above

    def fit_reference(self, rows: pd.DataFrame) -> DropoutRiskModel:
        """Measure the average training client's concept contributions at each session (``models.reference``)."""
        parts = self.contributions(rows)
        columns = self.spec.feature_columns()
        landmark = pd.to_numeric(rows["landmark"]).to_numpy()
        prepared = self.prepare(rows)
        values = {
            c: prepared[c].to_numpy(dtype=float)
            for c in self.columns
            if c != "landmark" and c not in self.spec.categorical_covariates
        }
        reference = fit_reference(parts[columns].to_numpy(), columns, landmark, self.spec, values)
        self.reference_dict = reference.to_dict()
        return self

    def concept_effects(self, features: pd.DataFrame) -> ConceptEffects:
        """Each row's calibrated log-odds as a baseline plus each concept's effect (``models.reference``)."""
        parts = self.contributions(features)
        columns = self.spec.feature_columns()
        landmark = self.landmarks(features)
        return concept_effects(
            parts[columns].to_numpy(),
            parts["bias"].to_numpy(),
            columns,
            landmark,
            self.spec,
            self.reference,
            self.calibrator.logit_intercepts(landmark, len(features)),
        )

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_spec", "_trajectories")}

    def signature(self) -> ModelSignature:
        categorical = set(self.spec.categorical_covariates)
        inputs = Schema(
            [
                ColSpec("string" if c in categorical else "double", c, required=False)
                for c in self.spec.feature_columns()
            ]
        )
        return ModelSignature(
            inputs=inputs,
            outputs=Schema([ColSpec("double", RISK)]),
            params=ParamSchema([ParamSpec("contributions", "boolean", False)]),
        )

    def example_input(self, features: pd.DataFrame) -> pd.DataFrame:
        """Feature rows as a client would send them in JSON (categories as text)."""
        prepared = self.prepare(features)
        for column in self.spec.categorical_covariates:
            prepared[column] = prepared[column].astype("object").where(prepared[column].notna(), None)
        return prepared

    # -- feature rows to risk ------------------------------------------------------------
    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        """Coerce feature rows (from build_features or from JSON) to the training dtypes."""
        frame = features.reindex(columns=self.spec.feature_columns())
        out = {}
        for column in frame.columns:
            levels = self.spec.categorical_covariates.get(column)
            if levels is None:
                out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            else:
                values = frame[column].astype("object").where(frame[column].notna())
                values = values.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
                # An unseen level is missing; pandas is deprecating (and will refuse) it inside pd.Categorical.
                values = values.where(values.isin(list(levels)))
                out[column] = pd.Categorical(values, categories=list(levels))
        return pd.DataFrame(out, index=frame.index)

    def raw_probability(self, features: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(self.prepare(features))[:, 1]

    def landmarks(self, features: pd.DataFrame) -> np.ndarray:
        """Each row's session number as the calibrator reads it (NaN when missing or not a number)."""
        return self.prepare(features)["landmark"].to_numpy(dtype=float)

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of dropout for each feature row (Platt's intercept at its landmark)."""
        if len(features) == 0:
            return np.empty(0)
        return self.calibrator.transform(self.raw_probability(features), self.landmarks(features))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions on the calibrated log-odds scale, plus a ``bias`` column.

        LightGBM's pred_contrib (TreeSHAP) or the logistic terms, multiplied by the
        Platt slope (one for every landmark): with sigmoid calibration, bias +
        contributions + the Platt intercept of the row's landmark is exactly the
        calibrated log-odds.
        """
        prepared = self.prepare(features)
        if self.kind == "lightgbm":
            parts, bias = lightgbm_contributions(self.estimator, prepared)
        elif self.kind == "logistic":
            parts, bias = logistic_contributions(self.estimator, prepared)
        else:
            raise ValueError(f"a {self.kind} model has no per-feature contributions")
        slope = self.calibrator.logit_slope
        out = parts.reindex(columns=self.spec.feature_columns(), fill_value=0.0) * slope
        out["bias"] = bias * slope
        return out

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        risk = self.predict_features(model_input)
        out = pd.DataFrame({RISK: risk}, index=model_input.index)
        if params and params.get("contributions"):
            parts = self.contributions(model_input).add_prefix(CONTRIBUTION_PREFIX)
            out = pd.concat([out, parts], axis=1)
        return out

    # -- history to risk -------------------------------------------------------------------
    def build_features(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame:
        if episodes is None:
            episodes = pd.DataFrame({"client_id": pd.Series(dtype="string"), "status": pd.Series(dtype="string")})
        return build_features(sessions, episodes, self.spec, self.trajectories)

    def score_history(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame:
        """Risk after every session of every client in validated, typed ``sessions``.

        A session past the model's last landmark gets the last landmark's risk:
        the model has not seen later sessions, and the landmark row summarises
        everything up to it.
        """
        features = self.build_features(sessions, episodes)
        return risk_per_session(sessions, features, self.predict_features(features), self.spec.max_landmark)
