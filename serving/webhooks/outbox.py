"""The outbox: deliveries written in the session's transaction, claimed and settled by the worker.

A claimed delivery's ``next_attempt_at`` moves a lease ahead, so a process that dies while sending
leaves it due again after the lease: it is sent again with the same ``webhook-id`` (at least once).
On PostgreSQL, claims skip rows another process holds (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.orm import Session

from dropout_risk.serving.tables import Base, WebhookDelivery, WebhookEndpoint
from dropout_risk.serving.webhooks.events import Alert

DELIVERIES = Base.metadata.tables[WebhookDelivery.__tablename__]
ENDPOINTS = Base.metadata.tables[WebhookEndpoint.__tablename__]


@dataclass(frozen=True)
class Subscription:
    endpoint_id: int
    events: frozenset[str]


@dataclass(frozen=True)
class Due:
    id: int
    url: str
    secret: str
    message_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


def subscriptions(db: Session, clinic_id: int) -> list[Subscription]:
    rows = db.execute(
        select(ENDPOINTS.c.id, ENDPOINTS.c.events).where(
            ENDPOINTS.c.clinic_id == clinic_id, ENDPOINTS.c.deleted_at.is_(None)
        )
    )
    return [Subscription(row.id, frozenset(row.events)) for row in rows]


def enqueue(db: Session, subscribed: Sequence[Subscription], alerts: Sequence[Alert], now: float) -> int:
    """A delivery per alert and endpoint that wants its event, in the caller's transaction."""
    rows = [
        {
            "endpoint_id": s.endpoint_id,
            "message_id": f"msg_{uuid.uuid4().hex}",
            "event": alert.event,
            "payload": {
                "type": alert.event,
                "timestamp": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
                "data": alert.data,
            },
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for alert in alerts
        for s in subscribed
        if alert.event in s.events
    ]
    if rows:
        db.execute(insert(DELIVERIES), rows)
    return len(rows)


def any_due(connection: Connection, now: float) -> bool:
    query = select(DELIVERIES.c.id).where(DELIVERIES.c.status == "pending", DELIVERIES.c.next_attempt_at <= now)
    return connection.execute(query.limit(1)).first() is not None


def claim(engine: Engine, now: float, lease: float, limit: int) -> list[Due]:
    """Up to ``limit`` due deliveries, leased until ``now + lease``; an endpoint deleted since: failed."""
    columns = DELIVERIES.c
    query = (
        select(columns.id, ENDPOINTS.c.url, ENDPOINTS.c.secret, ENDPOINTS.c.deleted_at, columns.message_id)
        .add_columns(columns.payload, columns.attempts, columns.created_at)
        .join(ENDPOINTS, ENDPOINTS.c.id == columns.endpoint_id)
        .where(columns.status == "pending", columns.next_attempt_at <= now)
        .order_by(columns.next_attempt_at)
        .limit(limit)
    )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(of=DELIVERIES, skip_locked=True)
        rows = connection.execute(query).all()
        gone = [r.id for r in rows if r.deleted_at is not None]
        due = [r for r in rows if r.deleted_at is None]
        if gone:
            connection.execute(
                update(DELIVERIES)
                .where(columns.id.in_(gone))
                .values(status="failed", finished_at=now, last_error="endpoint deleted")
            )
        if due:
            connection.execute(
                update(DELIVERIES).where(columns.id.in_([r.id for r in due])).values(next_attempt_at=now + lease)
            )
    return [Due(r.id, r.url, r.secret, r.message_id, r.payload, r.attempts, r.created_at) for r in due]


def settle(
    connection: Connection, delivery: Due, status: int | None, error: str | None, retry_at: float | None, now: float
) -> None:
    """Record an attempt: delivered (2xx), due again at ``retry_at``, or failed (``retry_at`` None)."""
    values: dict[str, Any] = {"attempts": delivery.attempts + 1, "last_status": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        values.update(status="delivered", finished_at=now)
    elif retry_at is None:
        values.update(status="failed", finished_at=now)
    else:
        values.update(next_attempt_at=retry_at)
    connection.execute(update(DELIVERIES).where(DELIVERIES.c.id == delivery.id).values(**values))
