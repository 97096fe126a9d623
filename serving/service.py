"""What the endpoints do, apart from HTTP: record, update, read and score clients."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.schemas import ClientUpdate, SessionIn
from dropout_risk.serving.scoring import HistoryRow, Problem, check_scores, score_history
from dropout_risk.serving.settings import RiskBands
from dropout_risk.serving.store import (
    find_client,
    insert_session,
    lock_or_create_client,
    payload_hash,
    set_current_risk,
    stored_risk,
    stored_sessions,
)
from dropout_risk.serving.tables import Client


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


class Invalid(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("invalid input")
        self.problems = problems


@dataclass(frozen=True)
class Recorded:
    created: bool
    risk: dict


def record_session(
    db: Session,
    clinic_id: int,
    external_id: str,
    payload: SessionIn,
    loaded: LoadedModel,
    registry: InstrumentRegistry,
    bands: RiskBands,
) -> Recorded:
    """Store one session and its risk; a retry of the same payload returns what was stored.

    Raises Invalid (scores, numbering, dates), Conflict (a different payload for a stored number).
    Nothing is written unless every check passes (the caller's transaction rolls back on raise).
    """
    problems = check_scores(payload.scores, registry, ("body",))
    if problems:
        raise Invalid(problems)
    client = lock_or_create_client(db, clinic_id, external_id)
    sessions = stored_sessions(db, client.id)
    digest = payload_hash(payload)
    if payload.session_number <= len(sessions):
        if sessions[payload.session_number - 1].payload_hash == digest:
            return Recorded(created=False, risk=stored_risk(db, client.id, payload.session_number))
        raise Conflict("a different session is already stored under this session_number")
    expected = len(sessions) + 1
    if payload.session_number != expected:
        raise Invalid(
            [Problem(("body", "session_number"), f"next session for this client must be number {expected}: no gaps")]
        )
    if sessions and payload.session_date < sessions[-1].session_date:
        raise Invalid([Problem(("body", "session_date"), "date is earlier than this client's previous session")])

    history = [
        *(s.history_row() for s in sessions),
        HistoryRow(payload.session_number, payload.session_date, payload.scores, payload.missed_since_last),
    ]
    risk, _ = score_history(loaded, history, client.covariates, client.status, bands)
    insert_session(db, client.id, payload, digest, risk)
    set_current_risk(db, client.id, risk, payload.session_date)
    return Recorded(created=True, risk=risk)


def update_client(
    db: Session, clinic_id: int, external_id: str, update: ClientUpdate, loaded: LoadedModel | None, bands: RiskBands
) -> Client:
    """Create or update a client's episode status and covariates; rescore if they change the inputs."""
    row = lock_or_create_client(db, clinic_id, external_id)
    client = db.get(Client, row.id)
    covariates = dict(row.covariates)
    covariates.update(update.covariates)
    for name in ("age", "gender", "therapist_id"):
        if name in update.model_fields_set:
            covariates[name] = getattr(update, name)
    client.covariates = covariates
    if update.status is not None:
        client.status = update.status
    sessions = stored_sessions(db, client.id)
    if sessions and loaded is not None:
        risk, _ = score_history(loaded, [s.history_row() for s in sessions], covariates, client.status, bands)
        client.current_probability, client.current_band = risk["probability"], risk["band"]
        client.current_session, client.current_model_version = risk["session_number"], risk["model_version"]
    db.flush()
    return client


def client_risk(
    db: Session, clinic_id: int, external_id: str, loaded: LoadedModel, bands: RiskBands
) -> tuple[Client, dict | None, list[dict]]:
    client = get_client(db, clinic_id, external_id)
    sessions = stored_sessions(db, client.id)
    if not sessions:
        return client, None, []
    risk, timeline = score_history(
        loaded, [s.history_row() for s in sessions], dict(client.covariates or {}), client.status, bands
    )
    return client, risk, timeline


def caseload(db: Session, clinic_id: int, order: str, page: int, page_size: int) -> tuple[list[Client], int]:
    query = select(Client).where(Client.clinic_id == clinic_id)
    if order == "risk":
        query = query.order_by(Client.current_probability.desc().nulls_last(), Client.external_id)
    elif order == "recent":
        query = query.order_by(Client.last_session_date.desc().nulls_last(), Client.external_id)
    else:
        query = query.order_by(Client.external_id)
    total = db.scalar(select(func.count()).select_from(Client).where(Client.clinic_id == clinic_id))
    return list(db.scalars(query.offset((page - 1) * page_size).limit(page_size))), total


def get_client(db: Session, clinic_id: int, external_id: str) -> Client:
    client = find_client(db, clinic_id, external_id)
    if client is None:
        raise NotFound("client not found")
    return client
