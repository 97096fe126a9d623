"""/v1/score (stateless) and /v1/model."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dropout_risk.serving.deps import (
    BAD_BODY_RESPONSE,
    NO_MODEL_RESPONSE,
    UNAUTHORIZED_RESPONSE,
    ClinicId,
    Model,
    Settings,
)
from dropout_risk.serving.schemas import ErrorBody, ModelInfo, ScoreRequest, ScoreResponse
from dropout_risk.serving.scoring import HistoryRow, check_history, score_history
from dropout_risk.serving.service import Invalid

router = APIRouter(prefix="/v1", tags=["scoring"], responses=UNAUTHORIZED_RESPONSE)


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={422: {"model": ErrorBody, "description": "Invalid history"}, **BAD_BODY_RESPONSE, **NO_MODEL_RESPONSE},
)
def score(body: ScoreRequest, _clinic: ClinicId, model: Model, settings: Settings, request: Request) -> ScoreResponse:
    """Score a whole history sent in the body; nothing is stored."""
    history = [HistoryRow(s.session_number, s.session_date, s.scores, s.missed_since_last) for s in body.sessions]
    problems = check_history(history, settings.registry())
    if problems:
        raise Invalid(problems)
    risk, timeline = score_history(model, history, body.covariates, "ongoing", settings.serving.bands)
    request.app.state.metrics.observe_risk(risk["probability"], risk["band"])
    return ScoreResponse(risk=risk, history=timeline)


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
