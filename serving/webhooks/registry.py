"""A clinic's webhook endpoints: register (the secret shown once), list, delete, and their deliveries."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dropout_risk.serving.tables import WebhookDelivery, WebhookEndpoint

Event = Literal["risk.band_raised", "flag.raised"]
MAX_ENDPOINTS = 20  # per clinic


class EndpointIn(BaseModel):
    url: str = Field(min_length=8, max_length=2000)
    events: list[Event] = Field(min_length=1, max_length=2)


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: dt.datetime


class CreatedEndpoint(EndpointOut):
    secret: str = Field(description="whsec_...: shown once; verify each delivery's webhook-signature with it")


class DeliveryOut(BaseModel):
    message_id: str = Field(description="the webhook-id header: the same on every attempt")
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _out(row: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(id=row.id, url=row.url, events=list(row.events), created_at=row.created_at)


def active(db: Session, clinic_id: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.clinic_id == clinic_id, WebhookEndpoint.deleted_at.is_(None))
    return list(db.scalars(query.order_by(WebhookEndpoint.id)))


def create(db: Session, clinic_id: int, endpoint: EndpointIn) -> CreatedEndpoint:
    row = WebhookEndpoint(
        clinic_id=clinic_id, url=endpoint.url, events=sorted(set(endpoint.events)), secret=new_secret()
    )
    db.add(row)
    db.flush()
    db.refresh(row)
    return CreatedEndpoint(**_out(row).model_dump(), secret=row.secret)


def find(db: Session, clinic_id: int, endpoint_id: int) -> WebhookEndpoint | None:
    row = db.get(WebhookEndpoint, endpoint_id)
    return row if row is not None and row.clinic_id == clinic_id and row.deleted_at is None else None


def delete(db: Session, clinic_id: int, endpoint_id: int) -> bool:
    result = db.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.clinic_id == clinic_id,
            WebhookEndpoint.deleted_at.is_(None),
        )
        .values(deleted_at=dt.datetime.now(dt.UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for an UPDATE


def deliveries(db: Session, endpoint_id: int, limit: int) -> list[DeliveryOut]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return [
        DeliveryOut(
            message_id=d.message_id,
            event=d.event,
            status=d.status,  # type: ignore[arg-type]  # written only as one of the three
            attempts=d.attempts,
            last_status=d.last_status,
            last_error=d.last_error,
            created_at=_time(d.created_at),
            finished_at=None if d.finished_at is None else _time(d.finished_at),
        )
        for d in db.scalars(query)
    ]


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
