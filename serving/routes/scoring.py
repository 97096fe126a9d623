"""/v1/score (stateless) and /v1/model."""

from __future__ import annotations

from fastapi import APIRouter

from dropout_risk.serving import service
from dropout_risk.serving.deps import (
    BAD_BODY_RESPONSE,
    CLINIC_KEY_RESPONSES,
    NO_MODEL_RESPONSE,
    ClinicId,
    Model,
    ReadDb,
    RiskMetrics,
    Scoring,
    Settings,
    Work,
)
from dropout_risk.serving.recalibration import for_clinic
from dropout_risk.serving.schemas import ErrorBody, ModelInfo, ScoreRequest, ScoreResponse
from dropout_risk.serving.scoring import HistoryRow

router = APIRouter(prefix="/v1", tags=["scoring"], responses=CLINIC_KEY_RESPONSES)


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={422: {"model": ErrorBody, "description": "Invalid history"}, **BAD_BODY_RESPONSE, **NO_MODEL_RESPONSE},
)
def score(
    body: ScoreRequest,
    clinic: ClinicId,
    db: ReadDb,
    scoring: Scoring,
    metrics: RiskMetrics,
    settings: Settings,
    work: Work,
) -> ScoreResponse:
    """Score a whole history sent in the body (through the clinic's recalibration, if any); nothing is stored.

    A history longer than ``serving.rate_limit_sessions`` sessions counts as that many requests of
    the key's rate limit as it has started blocks of them (a 200-session score costs 10 by default).
    """
    service.check_score_size(len(body.sessions), settings.serving.max_sessions_per_score)
    work.score(len(body.sessions))
    history = [HistoryRow(s.session_number, s.session_date, s.scores, s.missed_since_last) for s in body.sessions]
    scored = service.score(history, body.covariates, for_clinic(db, scoring, clinic))
    metrics.observe_risk(scored.risk.probability, scored.risk.band)
    return ScoreResponse(risk=scored.risk, history=scored.history)


@router.get("/model", response_model=ModelInfo, responses=NO_MODEL_RESPONSE)
def model_info(_clinic: ClinicId, model: Model) -> ModelInfo:
    """The model being served: name, version, alias, when it was trained, its test metrics."""
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        kind=model.model.kind,
        trained_at=model.trained_at,
        loaded_at=model.loaded_at,
        run_id=model.run_id,
        max_landmark=model.model.spec.max_landmark,
        instruments=[i.key for i in model.model.spec.instruments],
        metrics={k: float(v) for k, v in model.metrics.items()},
    )
