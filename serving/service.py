"""What the endpoints do, apart from HTTP: record, update, read and score clients."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dropout_risk.serving.checks import Problem, check_history, check_next_session, check_scores
from dropout_risk.serving.covariates import MAX_COVARIATES
from dropout_risk.serving.recalibration import for_clinic
from dropout_risk.serving.risk import HistoryItem, Risk
from dropout_risk.serving.schemas import ClientUpdate, SessionIn
from dropout_risk.serving.scoring import HistoryRow, Scored, ScoringContext, score_history
from dropout_risk.serving.store import (
    ClientRow,
    StoredSession,
    find_client,
    insert_session,
    lock_or_create_client,
    payload_hash,
    set_current_risk,
    set_episode,
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
    risk: Risk


@dataclass(frozen=True)
class ClientRiskView:
    """A client, its stored sessions, its current risk (None before any session) and the risk after every session."""

    client: Client
    sessions: list[StoredSession]
    risk: Risk | None
    history: list[HistoryItem]


def record_session(
    db: Session, clinic_id: int, external_id: str, payload: SessionIn, scoring: ScoringContext
) -> Recorded:
    """Store one session and its risk; a retry of the same payload returns what was stored.

    Raises Invalid (scores, numbering, dates), Conflict (a different payload for a stored number).
    Nothing is written unless every check passes (the caller's transaction rolls back on raise).
    """
    problems = check_scores(payload.scores, scoring.registry, ("body",))
    if problems:
        raise Invalid(problems)
    client = lock_or_create_client(db, clinic_id, external_id)
    sessions = stored_sessions(db, client.id)
    digest = payload_hash(payload)
    if payload.session_number <= len(sessions):
        if sessions[payload.session_number - 1].payload_hash == digest:
            return Recorded(created=False, risk=stored_risk(db, client.id, payload.session_number))
        raise Conflict("a different session is already stored under this session_number")
    history = [s.history_row() for s in sessions]
    problems = check_next_session(payload.session_number, payload.session_date, history[-1] if history else None)
    if problems:
        raise Invalid(problems)

    history.append(HistoryRow(payload.session_number, payload.session_date, payload.scores, payload.missed_since_last))
    risk = score_history(for_clinic(db, scoring, clinic_id), history, client.covariates).risk
    insert_session(db, client.id, payload, digest, risk)
    set_current_risk(db, client.id, risk, payload.session_date)
    return Recorded(created=True, risk=risk)


def update_client(
    db: Session, clinic_id: int, external_id: str, update: ClientUpdate, scoring: ScoringContext | None
) -> Client:
    """Create or update a client's episode status and covariates; rescore if they change the inputs.

    Without a model loaded (``scoring`` None) the episode is still updated; the stored risk stays.
    """
    row = lock_or_create_client(db, clinic_id, external_id)
    covariates = {**row.covariates, **update.covariates}
    for name in ("age", "gender", "therapist_id"):
        if name in update.model_fields_set:
            covariates[name] = getattr(update, name)
    # Each PUT was checked alone; together with what is stored they must still fit the per-client limit.
    if len(covariates) > MAX_COVARIATES:
        raise Invalid([Problem(("body", "covariates"), f"a client has at most {MAX_COVARIATES} covariates")])
    status = row.status if update.status is None else update.status
    sessions = stored_sessions(db, row.id)
    ended_on = _ended_on(row, status, update.ended_on, sessions[-1].session_date if sessions else None)
    set_episode(db, row.id, status, covariates, ended_on)
    if sessions and scoring is not None:
        risk = score_history(for_clinic(db, scoring, clinic_id), [s.history_row() for s in sessions], covariates).risk
        set_current_risk(db, row.id, risk, sessions[-1].session_date)
    return get_client(db, clinic_id, external_id)


def _ended_on(row: ClientRow, status: str, given: dt.date | None, last_session: dt.date | None) -> dt.date | None:
    """The day the episode ended: the one given, the one already stored, or today (UTC); None while ongoing.

    Raises Invalid for a date on an ongoing episode or before the client's last recorded session.
    """
    if status == "ongoing":
        if given is not None:
            msg = "ended_on is only for an ended episode (status completed or dropout)"
            raise Invalid([Problem(("body", "ended_on"), msg)])
        return None
    if given is None:
        return row.ended_on if row.status == status and row.ended_on is not None else dt.datetime.now(dt.UTC).date()
    if last_session is not None and given < last_session:
        raise Invalid([Problem(("body", "ended_on"), "ended_on may not be before the client's last recorded session")])
    return given


def client_risk(db: Session, clinic_id: int, external_id: str, scoring: ScoringContext) -> ClientRiskView:
    client = get_client(db, clinic_id, external_id)
    sessions = stored_sessions(db, client.id)
    if not sessions:
        return ClientRiskView(client, sessions, None, [])
    scored = score_history(
        for_clinic(db, scoring, clinic_id), [s.history_row() for s in sessions], dict(client.covariates or {})
    )
    return ClientRiskView(client, sessions, scored.risk, scored.history)


def check_score_size(sessions: int, limit: int) -> None:
    """One clinic's 500-session scores made another's p95 100x slower: a score's work is bounded. Raises Invalid."""
    if sessions > limit:
        msg = f"at most {limit} sessions per score (serving.max_sessions_per_score); got {sessions}"
        raise Invalid([Problem(("body", "sessions"), msg)])


def score(history: Sequence[HistoryRow], covariates: Mapping[str, object], scoring: ScoringContext) -> Scored:
    """A whole history sent in the body, checked and scored; nothing is stored. Raises Invalid."""
    problems = check_history(history, scoring.registry)
    if problems:
        raise Invalid(problems)
    return score_history(scoring, history, covariates)


def caseload(db: Session, clinic_id: int, order: str, page: int, page_size: int) -> tuple[list[Client], int]:
    query = select(Client).where(Client.clinic_id == clinic_id)
    if order == "risk":
        query = query.order_by(Client.current_probability.desc().nulls_last(), Client.external_id)
    elif order == "recent":
        query = query.order_by(Client.last_session_date.desc().nulls_last(), Client.external_id)
    else:
        query = query.order_by(Client.external_id)
    total = db.scalar(select(func.count()).select_from(Client).where(Client.clinic_id == clinic_id)) or 0
    return list(db.scalars(query.offset((page - 1) * page_size).limit(page_size))), total


def get_client(db: Session, clinic_id: int, external_id: str) -> Client:
    client = find_client(db, clinic_id, external_id)
    if client is None:
        raise NotFound("client not found")
    return client
