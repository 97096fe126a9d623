"""/v1/clients: record sessions, update episodes, read risks, list the caseload."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy.orm import Session

from dropout_risk.serving import service
from dropout_risk.serving.deps import (
    BAD_BODY_RESPONSE,
    CLINIC_KEY_RESPONSES,
    NO_MODEL_RESPONSE,
    ClinicId,
    Db,
    MaybeScoring,
    ReadDb,
    Responses,
    RiskMetrics,
    Scoring,
    Settings,
)
from dropout_risk.serving.schemas import (
    Caseload,
    CaseloadItem,
    ClientId,
    ClientOut,
    ClientRisk,
    ClientUpdate,
    ErrorBody,
    RecordedSession,
    SessionBody,
    SessionOut,
)
from dropout_risk.serving.store import session_counts
from dropout_risk.serving.tables import Client

router = APIRouter(prefix="/v1/clients", tags=["clients"], responses=CLINIC_KEY_RESPONSES)
ClientPath = Annotated[ClientId, Path(description="The clinic's own identifier for the client")]
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such client for this clinic"}}


@router.post(
    "/{client_id}/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordedSession,
    responses={
        200: {"model": RecordedSession, "description": "The same session again (idempotent retry)"},
        409: {"model": ErrorBody, "description": "A different session under this number"},
        422: {"model": ErrorBody, "description": "Invalid scores, a gap or a date going back"},
        **BAD_BODY_RESPONSE,
        **NO_MODEL_RESPONSE,
    },
)
def record_session(
    client_id: ClientPath,
    payload: SessionBody,
    clinic: ClinicId,
    db: Db,
    scoring: Scoring,
    metrics: RiskMetrics,
    settings: Settings,
    response: Response,
) -> RecordedSession:
    """Record one attended session and return the client's updated risk."""
    try:
        recorded = service.record_session(db, clinic, client_id, payload, scoring, settings.webhooks.band_rise)
    except service.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    db.commit()
    if not recorded.created:
        response.status_code = status.HTTP_200_OK
    risk = recorded.risk
    metrics.observe_risk(risk.probability, risk.band)
    session = SessionOut(
        session_number=payload.session_number,
        session_date=payload.session_date,
        scores=payload.scores,
        missed_since_last=payload.missed_since_last,
    )
    return RecordedSession(client_id=client_id, session=session, risk=risk)


@router.put("/{client_id}", response_model=ClientOut, responses=BAD_BODY_RESPONSE)
def update_client(
    client_id: ClientPath, update: ClientUpdate, clinic: ClinicId, db: Db, scoring: MaybeScoring
) -> ClientOut:
    """Create or update the client's covariates and episode status (when treatment ends)."""
    client = service.update_client(db, clinic, client_id, update, scoring)
    out = _client_out(db, client)
    db.commit()
    return out


@router.get("/{client_id}", response_model=ClientOut, responses=NOT_FOUND)
def get_client(client_id: ClientPath, clinic: ClinicId, db: ReadDb) -> ClientOut:
    try:
        return _client_out(db, service.get_client(db, clinic, client_id))
    except service.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get("/{client_id}/risk", response_model=ClientRisk, responses={**NOT_FOUND, **NO_MODEL_RESPONSE})
def get_risk(client_id: ClientPath, clinic: ClinicId, db: ReadDb, scoring: Scoring, metrics: RiskMetrics) -> ClientRisk:
    """The client's current risk and the risk after every session, from the model being served."""
    try:
        view = service.client_risk(db, clinic, client_id, scoring)
    except service.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if view.risk is not None:
        metrics.observe_risk(view.risk.probability, view.risk.band)
    return ClientRisk(client_id=client_id, status=view.client.status, risk=view.risk, history=view.history)


@router.get("", response_model=Caseload)
def list_clients(
    clinic: ClinicId,
    db: ReadDb,
    settings: Settings,
    order: Annotated[Literal["risk", "recent", "client_id"], Query()] = "risk",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Caseload:
    """The clinic's caseload, highest current risk first (the risk served at the latest session)."""
    size = min(page_size or settings.serving.page_size, settings.serving.max_page_size)
    clients, total = service.caseload(db, clinic, order, page, size)
    items = [
        CaseloadItem(
            client_id=c.external_id,
            status=c.status,
            probability=c.current_probability,
            band=c.current_band,
            model_version=c.current_model_version,
            session_number=c.current_session,
            last_session_date=c.last_session_date,
        )
        for c in clients
    ]
    return Caseload(items=items, page=page, page_size=size, total=total, order=order)


def _client_out(db: Session, client: Client) -> ClientOut:
    counts = session_counts(db, [client.id])
    return ClientOut(
        client_id=client.external_id,
        status=client.status,
        covariates=client.covariates or {},
        sessions=counts.get(client.id, 0),
        last_session_date=client.last_session_date,
        probability=client.current_probability,
        band=client.current_band,
        model_version=client.current_model_version,
        ended_on=client.ended_on,
    )
