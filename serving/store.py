"""Reads and writes of clients and sessions, each inside the caller's transaction.

The per-session hot path (record a session, read a history) uses Core
statements that select only the columns it needs: the ORM's unit of work and
decoding every stored risk would cost more than scoring the client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dropout_risk.serving.risk import Risk
from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.scoring import HistoryRow
from dropout_risk.serving.tables import Base, Client, SessionRecord, Status

# Core tables, not ORM entities, on the hot path: ORM-enabled DML costs more than the statement.
CLIENTS = Base.metadata.tables[Client.__tablename__]
SESSIONS = Base.metadata.tables[SessionRecord.__tablename__]


@dataclass(frozen=True)
class ClientRow:
    id: int
    status: Status
    covariates: dict[str, object]
    ended_on: dt.date | None = None


@dataclass(frozen=True)
class StoredSession:
    session_number: int
    session_date: dt.date
    missed_since_last: int | None
    scores: dict[str, float]
    payload_hash: str

    def history_row(self) -> HistoryRow:
        return HistoryRow(self.session_number, self.session_date, self.scores, self.missed_since_last)


def payload_hash(session: SessionIn) -> str:
    """A canonical digest of a session's payload: equal payloads, equal digests."""
    canonical = json.dumps(
        {
            "session_number": session.session_number,
            "session_date": session.session_date.isoformat(),
            "scores": {k: float(v) for k, v in sorted(session.scores.items())},
            "missed_since_last": session.missed_since_last,
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_client(db: Session, clinic_id: int, external_id: str) -> Client | None:
    return db.scalar(select(Client).where(Client.clinic_id == clinic_id, Client.external_id == external_id))


def lock_or_create_client(db: Session, clinic_id: int, external_id: str) -> ClientRow:
    """The client's id, status and covariates, locked for this transaction; created if new.

    INSERT ... ON CONFLICT DO NOTHING makes two first writes for the same client safe;
    FOR UPDATE then serialises writers of one client on PostgreSQL (SQLite's write
    lock already serialises everything).
    """
    dialect = db.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.execute(
        upsert(CLIENTS)
        .values(clinic_id=clinic_id, external_id=external_id, status="ongoing", covariates={})
        .on_conflict_do_nothing(index_elements=["clinic_id", "external_id"])
    )
    query = select(CLIENTS.c.id, CLIENTS.c.status, CLIENTS.c.covariates, CLIENTS.c.ended_on).where(
        CLIENTS.c.clinic_id == clinic_id, CLIENTS.c.external_id == external_id
    )
    if dialect == "postgresql":
        query = query.with_for_update()
    row = db.execute(query).one()
    return ClientRow(row.id, row.status, dict(row.covariates or {}), row.ended_on)


def stored_sessions(db: Session, client_pk: int) -> list[StoredSession]:
    columns = SESSIONS.c
    rows = db.execute(
        select(
            columns.session_number,
            columns.session_date,
            columns.missed_since_last,
            columns.scores,
            columns.payload_hash,
        )
        .where(columns.client_pk == client_pk)
        .order_by(columns.session_number)
    )
    return [StoredSession(*row) for row in rows]


def stored_risk(db: Session, client_pk: int, session_number: int) -> Risk:
    """The risk returned when the session was recorded (a stored session always has one)."""
    stored = db.execute(
        select(SESSIONS.c.risk).where(SESSIONS.c.client_pk == client_pk, SESSIONS.c.session_number == session_number)
    ).scalar_one()
    return Risk.from_stored(stored)


def insert_session(
    db: Session, client_pk: int, session: SessionIn, digest: str, risk: Risk, basis: list[str] | None = None
) -> None:
    db.execute(
        insert(SESSIONS).values(
            client_pk=client_pk,
            session_number=session.session_number,
            session_date=session.session_date,
            missed_since_last=session.missed_since_last,
            scores=dict(session.scores),
            payload_hash=digest,
            risk=risk.stored(),
            probability=risk.probability,
            landmark=risk.landmark,
            model_version=risk.model_version,
            recalibration_id=risk.recalibration,
            basis=basis,
        )
    )


def set_current_risk(db: Session, client_pk: int, risk: Risk, last_date: dt.date) -> None:
    """The risk the caseload lists and sorts by: the one served after the client's latest session."""
    db.execute(
        update(CLIENTS)
        .where(CLIENTS.c.id == client_pk)
        .values(
            current_probability=risk.probability,
            current_band=risk.band,
            current_session=risk.session_number,
            current_model_version=risk.model_version,
            last_session_date=last_date,
            updated_at=func.now(),
        )
    )


def set_episode(
    db: Session, client_pk: int, status: Status, covariates: Mapping[str, object], ended_on: dt.date | None = None
) -> None:
    db.execute(
        update(CLIENTS)
        .where(CLIENTS.c.id == client_pk)
        .values(status=status, covariates=dict(covariates), ended_on=ended_on, updated_at=func.now())
    )


def session_counts(db: Session, client_pks: list[int]) -> dict[int, int]:
    if not client_pks:
        return {}
    rows = db.execute(
        select(SessionRecord.client_pk, func.count())
        .where(SessionRecord.client_pk.in_(client_pks))
        .group_by(SessionRecord.client_pk)
    ).all()
    return dict(rows)


@dataclass(frozen=True)
class ServedRisk:
    """A stored session's id, number and date, and the risk served when it was recorded."""

    id: int
    session_number: int
    session_date: dt.date
    risk: Risk
    basis: tuple[str, ...] = ()  # references of the FHIR resources it was recorded from, if any


_SERVED_COLUMNS = (SESSIONS.c.id, SESSIONS.c.session_number, SESSIONS.c.session_date, SESSIONS.c.risk, SESSIONS.c.basis)


def _served(row) -> ServedRisk:
    return ServedRisk(row.id, row.session_number, row.session_date, Risk.from_stored(row.risk), tuple(row.basis or ()))


def served_risks(db: Session, client_pk: int) -> list[ServedRisk]:
    columns = SESSIONS.c
    rows = db.execute(select(*_SERVED_COLUMNS).where(columns.client_pk == client_pk).order_by(columns.session_number))
    return [_served(row) for row in rows]


def served_risk(db: Session, clinic_id: int, session_id: int) -> tuple[str, ServedRisk] | None:
    """The client's id and the risk served at stored session ``session_id``, if that session is the clinic's."""
    row = db.execute(
        select(CLIENTS.c.external_id, *_SERVED_COLUMNS)
        .join(CLIENTS, CLIENTS.c.id == SESSIONS.c.client_pk)
        .where(SESSIONS.c.id == session_id, CLIENTS.c.clinic_id == clinic_id)
    ).one_or_none()
    return None if row is None else (row.external_id, _served(row))
