"""The service's tables (SQLAlchemy 2.0 declarative). Migrations live in serving/migrations."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dropout_risk.serving.risk import Band

Status = Literal["ongoing", "completed", "dropout"]  # an episode's status, as the data contract names them


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A clinic's key: only its SHA-256 is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    clinic: Mapped[Clinic] = relationship()


class DashboardSession(Base):
    """A signed-in dashboard browser: its cookie names this row, and sign-out deletes it.

    Only the SHA-256 of the cookie's random session id is stored, as for API keys.
    """

    __tablename__ = "dashboard_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)  # Unix seconds: compares alike on every backend


class ServedModel(Base):
    """The version the processes serve: ``generation`` grows each time one of them switches to another.

    A process answers with a version only after writing it here, and a process that finds a
    higher generation here than its own loads that version before answering (serving.served_version).
    """

    __tablename__ = "served_models"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)


class Client(Base):
    """One client of one clinic: the episode (status, covariates) and the risk last served."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("clinic_id", "external_id", name="uq_clients_clinic_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[Status] = mapped_column(String(20), default="ongoing")
    covariates: Mapped[dict] = mapped_column(JSON, default=dict)
    current_probability: Mapped[float | None] = mapped_column(Float, index=True)
    current_band: Mapped[Band | None] = mapped_column(String(20))
    current_session: Mapped[int | None] = mapped_column(Integer)
    current_model_version: Mapped[str | None] = mapped_column(String(40))
    last_session_date: Mapped[dt.date | None] = mapped_column(Date)
    # The day an ended episode (completed or dropout) ended; None while it is ongoing.
    ended_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SessionRecord(Base):
    """One attended session as the clinic recorded it; ``payload_hash`` makes retries idempotent."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("client_pk", "session_number", name="uq_sessions_client_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    session_number: Mapped[int] = mapped_column(Integer)
    session_date: Mapped[dt.date] = mapped_column(Date)
    missed_since_last: Mapped[int | None] = mapped_column(Integer)
    scores: Mapped[dict] = mapped_column(JSON, default=dict)
    payload_hash: Mapped[str] = mapped_column(String(64))
    risk: Mapped[dict] = mapped_column(JSON, default=dict)  # the risk returned when it was recorded
    # Copies of the stored risk's figures, for the monitor (which reads them as columns, never the JSON).
    probability: Mapped[float | None] = mapped_column(Float)
    landmark: Mapped[int | None] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(40))
    recalibration_id: Mapped[int | None] = mapped_column(Integer)  # the clinic's recalibration applied, if any
    # Recorded through FHIR: references ("Observation/ID") of the resources that gave it; None through /v1.
    basis: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Recalibration(Base):
    """A clinic's update of one model version's calibrated log-odds: logit p' = intercept + slope * logit p.

    Rows are never changed but for ``reverted_at``/``reverted_by``: a clinic's active recalibration is
    its newest row for the served version that is not reverted (storing a new one reverts the previous).
    ``evaluation`` keeps the before/after figures shown when it was stored.
    """

    __tablename__ = "recalibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(20))
    intercept: Mapped[float] = mapped_column(Float)
    slope: Mapped[float] = mapped_column(Float)
    episodes: Mapped[int] = mapped_column(Integer)
    evaluation: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    reverted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reverted_by: Mapped[str | None] = mapped_column(String(200))


class WebhookEndpoint(Base):
    """A clinic's webhook receiver: its URL, the events it wants, and the secret its deliveries are signed with.

    The secret is kept as it was shown (an HMAC needs it); ``deleted_at`` ends deliveries to it.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One alert to one endpoint (the outbox): written in the transaction of the session that raised it.

    ``status`` is pending, delivered or failed; times are Unix seconds (they compare alike on every backend).
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))


class CdsTokenId(Base):
    """A CDS Hooks caller's JWT seen (SHA-256 of issuer and jti), kept until it expires: a replay is refused.

    In the database, not in a process's memory, so a token replayed to another worker or replica is refused too.
    """

    __tablename__ = "cds_token_ids"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
