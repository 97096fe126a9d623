"""From one client's recorded sessions to a calibrated, explained risk.

The same ``features`` functions as training build the rows, through their
one-client entry point (``features.landmarks.client_features``, held exactly
equal to the batch builder by a test), and the packaged model scores them
through its numpy twin (``models.compiled``, held equal to the sklearn and
LightGBM path). So the API's risk equals ``dropout-risk score`` for the same
history, in a fraction of the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dropout_risk.features.flags import flag_arrays
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.landmarks import ClientHistory, client_features
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.serving.explain import describe_flags, factors
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.settings import RiskBands
from dropout_risk.serving.suggestions import suggestions_for


@dataclass(frozen=True)
class HistoryRow:
    session_number: int
    session_date: dt.date
    scores: Mapping[str, float]
    missed_since_last: int | None


@dataclass(frozen=True)
class Problem:
    loc: tuple[str | int, ...]
    msg: str


def check_scores(scores: Mapping[str, float], registry: InstrumentRegistry, loc: tuple) -> list[Problem]:
    problems = []
    for key, value in scores.items():
        instrument = registry.get(key)
        if instrument is None:
            problems.append(Problem((*loc, "scores", key), "unknown instrument: not in the instrument registry"))
        elif not instrument.min <= value <= instrument.max:
            problems.append(
                Problem(
                    (*loc, "scores", key), f"must be within {instrument.min:g}-{instrument.max:g} ({instrument.name})"
                )
            )
    return problems


def check_history(history: Sequence[HistoryRow], registry: InstrumentRegistry) -> list[Problem]:
    """A whole history (POST /v1/score): numbered 1..n in order, dates never going back, scores in range."""
    problems = []
    for position, row in enumerate(history):
        loc = ("body", "sessions", position)
        if row.session_number != position + 1:
            problems.append(
                Problem((*loc, "session_number"), "sessions must be numbered 1, 2, 3, ... in order, without gaps")
            )
        if position and row.session_date < history[position - 1].session_date:
            problems.append(Problem((*loc, "session_date"), "date is earlier than the previous session"))
        problems += check_scores(row.scores, registry, loc)
    return problems


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
        code = values[name]
        values[name] = levels[int(code)] if code == code else None
    return values


def score_history(
    loaded: LoadedModel, history: Sequence[HistoryRow], covariates: Mapping[str, object], status: str, bands: RiskBands
) -> tuple[dict, list[dict]]:
    """(risk after the latest session, risk after every session) for one client's history.

    ``status`` is the episode's; it labels training rows but never changes a risk.
    """
    model, compiled = loaded.model, loaded.compiled
    spec = model.spec
    features = client_features(client_history(history, covariates), spec, model.trajectories)
    matrix = np.column_stack([features[c] for c in compiled.columns])
    probabilities = compiled.predict(matrix)
    landmark_of = np.minimum([row.session_number for row in history], spec.max_landmark)
    timeline = [
        {
            "session_number": row.session_number,
            "session_date": row.session_date,
            "probability": float(probabilities[k - 1]),
            "band": bands.band(float(probabilities[k - 1])),
        }
        for row, k in zip(history, landmark_of, strict=True)
    ]

    latest = history[-1]
    k = int(landmark_of[-1])
    probability = float(probabilities[k - 1])
    band = bands.band(probability)
    last = {name: column[k - 1 : k] for name, column in features.items()}
    fired = {name: bool(value[0]) for name, value in flag_arrays(last, spec, 1).items()}
    flags = describe_flags(fired)
    parts, _bias = compiled.contributions(matrix[k - 1 : k])
    contributions = dict(zip(compiled.columns, parts[0].tolist(), strict=True))
    risk = {
        "probability": probability,
        "band": band,
        "model_version": loaded.version,
        "landmark": k,
        "session_number": latest.session_number,
        "factors": factors(_explained_row(features, spec, k - 1), contributions, spec),
        "flags": flags,
        "suggestions": suggestions_for([f["flag"] for f in flags], band),
        "missing_inputs": [i.key for i in spec.instruments if latest.scores.get(i.key) is None],
    }
    return risk, timeline
