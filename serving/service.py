"""What the endpoints do, apart from HTTP: record, update, read and score clients."""

from __future__ import annotations

import datetime as dt
import time
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
    ServedRisk,
    StoredSession,
    find_client,
    insert_session,
    lock_or_create_client,
    payload_hash,
    served_risks,
    set_current_risk,
    set_episode,
    stored_risk,
    stored_sessions,
)
from dropout_risk.serving.store import served_risk as store_served_risk
from dropout_risk.serving.tables import Client
from dropout_risk.serving.webhooks import outbox
from dropout_risk.serving.webhooks.events import alerts


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
    db: Session,
    clinic_id: int,
    external_id: str,
    payload: SessionIn,
    scoring: ScoringContext,
    band_rise: float | None = None,
) -> Recorded:
    """Store one session and its risk; a retry of the same payload returns what was stored.

    Raises Invalid (scores, numbering, dates), Conflict (a different payload for a stored number).
    Nothing is written unless every check passes (the caller's transaction rolls back on raise).
    With ``band_rise`` (``webhooks.band_rise``) the alerts the new risk raises go to the webhook
    outbox in the same transaction.
    """
    problems = check_scores(payload.scores, scoring.registry, ("body",))
    if problems:
        raise Invalid(problems)
    writer = ClientWriter(db, clinic_id, external_id, scoring, band_rise)
    recorded = writer.record(payload)
    writer.finish()
    return recorded


class ClientWriter:
    """One client's sessions recorded in order, in the caller's transaction, by ``record_session``'s rules.

    The client is locked (or created) once and its stored sessions read once; ``record`` checks and
    stores one session (raising Invalid or Conflict before writing anything for it), and ``finish``
    sets the client's current risk to the last one stored. ``POST /v1/clients/{id}/sessions`` records
    one session through it; a FHIR Bundle records each client's sessions through one writer.
    """

    def __init__(
        self,
        db: Session,
        clinic_id: int,
        external_id: str,
        scoring: ScoringContext,
        band_rise: float | None = None,
    ):
        self.db = db
        # The clinic's recalibration of the served version, if it has one (serving.recalibration).
        self.scoring = for_clinic(db, scoring, clinic_id)
        self.external_id = external_id
        self.client = lock_or_create_client(db, clinic_id, external_id)
        self.sessions = stored_sessions(db, self.client.id)
        self._latest: tuple[Risk, dt.date] | None = None
        # Webhook alerts: the clinic's endpoints, read once; none (and no extra read) without band_rise.
        self.band_rise = band_rise
        self.subscribed = outbox.subscriptions(db, clinic_id) if band_rise is not None else []

    def record(self, payload: SessionIn, basis: list[str] | None = None) -> Recorded:
        """Store one session (``basis``: references of the FHIR resources it came from, kept if it is new)."""
        problems = check_scores(payload.scores, self.scoring.registry, ("body",))
        if problems:
            raise Invalid(problems)
        digest = payload_hash(payload)
        if payload.session_number <= len(self.sessions):
            if self.sessions[payload.session_number - 1].payload_hash == digest:
                return Recorded(created=False, risk=stored_risk(self.db, self.client.id, payload.session_number))
            raise Conflict("a different session is already stored under this session_number")
        history = [s.history_row() for s in self.sessions]
        problems = check_next_session(payload.session_number, payload.session_date, history[-1] if history else None)
        if problems:
            raise Invalid(problems)
        row = HistoryRow(payload.session_number, payload.session_date, payload.scores, payload.missed_since_last)
        risk = score_history(self.scoring, [*history, row], self.client.covariates).risk
        insert_session(self.db, self.client.id, payload, digest, risk, basis)
        scores = dict(payload.scores)
        self.sessions.append(
            StoredSession(payload.session_number, payload.session_date, payload.missed_since_last, scores, digest)
        )
        if self.subscribed and self.band_rise is not None:
            previous = self._latest[0] if self._latest is not None else None
            if previous is None and payload.session_number > 1:
                previous = stored_risk(self.db, self.client.id, payload.session_number - 1)
            raised = alerts(self.external_id, previous, risk, self.band_rise)
            outbox.enqueue(self.db, self.subscribed, raised, time.time())
        self._latest = (risk, payload.session_date)
        return Recorded(created=True, risk=risk)

    def finish(self) -> None:
        """The caseload's risk: the one served after the latest session stored (nothing if none was)."""
        if self._latest is not None:
            set_current_risk(self.db, self.client.id, *self._latest)


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
    # Status and ended_on are never model inputs: closing an episode keeps the risk served at its last session.
    if sessions and scoring is not None and covariates != row.covariates:
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


def client_served_risks(db: Session, clinic_id: int, external_id: str) -> list[ServedRisk]:
    """Every risk served for the client's sessions (as recorded); none for a client this clinic does not have."""
    client = find_client(db, clinic_id, external_id)
    return [] if client is None else served_risks(db, client.id)


def served_risk(db: Session, clinic_id: int, session_id: int | None) -> tuple[str, ServedRisk] | None:
    """The client's id and one served risk, by stored session; None when there is no such session of this clinic."""
    return None if session_id is None else store_served_risk(db, clinic_id, session_id)


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
