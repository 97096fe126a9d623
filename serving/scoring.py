"""From one client's recorded sessions to a calibrated, explained risk.

The same ``features`` functions as training build the rows, through their
one-client entry point (``features.landmarks.client_features``, held exactly
equal to the batch builder by a test), and the packaged model scores them
through its numpy twin (``models.compiled``, held equal to the sklearn and
LightGBM path). So the API's risk equals ``dropout-risk score`` for the same
history, in a fraction of the time.

Everything scoring needs travels in one ``ScoringContext``, built once per
request so that every part of a response comes from one model version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dropout_risk.features.flags import flag_arrays
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.landmarks import ClientHistory, client_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories
from dropout_risk.models.local_update import UpdatedScorer
from dropout_risk.models.reference import ConceptEffects, ConceptReference
from dropout_risk.serving.explain import describe_flags
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.reasons import concept_factors, risk_changes
from dropout_risk.serving.risk import HistoryItem, Risk
from dropout_risk.serving.settings import RiskBands
from dropout_risk.serving.suggestions import suggestions_for


class Scorer(Protocol):
    """What scoring uses of ``models.compiled.CompiledModel``: its input columns, risks and contributions."""

    @property
    def columns(self) -> Sequence[str]: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def concept_effects(self, X: np.ndarray) -> ConceptEffects: ...

    @property
    def inputs(self) -> tuple[str, ...]: ...

    @property
    def reference(self) -> ConceptReference: ...


@dataclass(frozen=True)
class AppliedRecalibration:
    """A clinic's recalibration of the served version (``serving.recalibration``): its id and update."""

    id: int
    intercept: float
    slope: float


@dataclass(frozen=True)
class ScoringContext:
    """The model version being served, the instrument registry and the risk bands: all scoring reads.

    ``recalibration``: the requesting clinic's update of this version's log-odds, if it has one
    (``serving.recalibration.for_clinic`` sets it); every risk then goes through it and says so.
    """

    version: str
    spec: FeatureSpec
    trajectories: ExpectedTrajectories
    scorer: Scorer
    registry: InstrumentRegistry
    bands: RiskBands
    recalibration: AppliedRecalibration | None = None

    @property
    def clinic_scorer(self) -> Scorer:
        """The scorer, through the clinic's recalibration when it has one."""
        update = self.recalibration
        return self.scorer if update is None else UpdatedScorer(self.scorer, update.intercept, update.slope)

    @classmethod
    def of(cls, loaded: LoadedModel, registry: InstrumentRegistry, bands: RiskBands) -> ScoringContext:
        model = loaded.model
        return cls(loaded.version, model.spec, model.trajectories, loaded.compiled, registry, bands)


@dataclass(frozen=True)
class HistoryRow:
    session_number: int
    session_date: dt.date
    scores: Mapping[str, float]
    missed_since_last: int | None


@dataclass(frozen=True)
class Scored:
    """The risk after the latest session, explained, and the risk after every session."""

    risk: Risk
    history: list[HistoryItem]


def client_history(history: Sequence[HistoryRow], covariates: Mapping[str, object]) -> ClientHistory:
    """The arrays the one-client feature path takes (what validation would type them as)."""
    keys = sorted({key for row in history for key in row.scores})
    return ClientHistory(
        session_number=np.array([row.session_number for row in history], dtype=np.int64),
        date_ns=np.array([row.session_date for row in history], dtype="datetime64[ns]").astype(np.int64),
        missed=np.array(
            [np.nan if row.missed_since_last is None else float(row.missed_since_last) for row in history], dtype=float
        ),
        scores={key: np.array([float(row.scores.get(key, np.nan)) for row in history], dtype=float) for key in keys},
        covariates=dict(covariates),
    )


def _explained_row(features: dict[str, np.ndarray], spec: FeatureSpec, row: int) -> dict[str, object]:
    """One row's feature values, categorical covariates back as their level (for the plain words)."""
    values: dict[str, object] = {name: float(column[row]) for name, column in features.items()}
    for name, levels in spec.categorical_covariates.items():
        code = float(features[name][row])
        values[name] = levels[int(code)] if code == code else None
    return values


def score_history(context: ScoringContext, history: Sequence[HistoryRow], covariates: Mapping[str, object]) -> Scored:
    """The risk after the latest session of one client's history, and after every session."""
    spec, scorer, bands = context.spec, context.clinic_scorer, context.bands
    features = client_features(client_history(history, covariates), spec, context.trajectories)
    matrix = np.column_stack([features[c] for c in scorer.columns])
    probabilities = scorer.predict(matrix)
    # Sessions after the last landmark are scored on the last landmark's row.
    landmark_of = np.minimum([row.session_number for row in history], spec.max_landmark)
    timeline = [
        HistoryItem(
            session_number=row.session_number,
            session_date=row.session_date,
            probability=float(probabilities[k - 1]),
            band=bands.band(float(probabilities[k - 1])),
        )
        for row, k in zip(history, landmark_of, strict=True)
    ]
    k = int(landmark_of[-1])
    latest = timeline[-1]
    last = {name: column[k - 1 : k] for name, column in features.items()}
    flags = describe_flags({name: bool(value[0]) for name, value in flag_arrays(last, spec, 1).items()})
    effects = scorer.concept_effects(matrix[k - 1 : k]).effects
    row = _explained_row(features, spec, k - 1)
    risk = Risk(
        probability=latest.probability,
        band=latest.band,
        model_version=context.version,
        landmark=k,
        session_number=latest.session_number,
        factors=concept_factors(
            row, {c: float(e[0]) for c, e in effects.items()}, spec, scorer.reference, k, scorer.inputs
        ),
        flags=flags,
        suggestions=suggestions_for([f.flag for f in flags], latest.band),
        missing_inputs=[i.key for i in spec.instruments if history[-1].scores.get(i.key) is None],
        changes=_changes(context, matrix, features, latest.session_number),
        recalibration=context.recalibration.id if context.recalibration else None,
    )
    return Scored(risk, timeline)


def _changes(context: ScoringContext, matrix: np.ndarray, features: dict[str, np.ndarray], session: int) -> list:
    """What moved the risk since the previous session; none at session 1 or past the last landmark."""
    if not 2 <= session <= context.spec.max_landmark:
        return []
    rows = (_explained_row(features, context.spec, session - 2), _explained_row(features, context.spec, session - 1))
    return risk_changes(
        matrix[session - 2],
        matrix[session - 1],
        list(context.scorer.columns),
        context.clinic_scorer.predict,
        context.spec,
        rows,
        session,
    )
