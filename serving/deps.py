"""FastAPI dependencies: settings, database sessions, the model, the caller's clinic."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from dropout_risk.serving.keys import clinic_for_key
from dropout_risk.serving.model_holder import LoadedModel, ModelHolder
from dropout_risk.serving.schemas import ErrorBody
from dropout_risk.serving.settings import ServingSettings

bearer = HTTPBearer(auto_error=False, description="A clinic's API key (dropout-risk keys create --clinic NAME)")
UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "missing, unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
)
# The answers the dependencies and body parsing give, documented on the routes that can give them.
UNAUTHORIZED_RESPONSE = {401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"}}
NO_MODEL_RESPONSE = {503: {"model": ErrorBody, "description": "No model loaded yet"}}
BAD_BODY_RESPONSE = {400: {"model": ErrorBody, "description": "The body cannot be read (not UTF-8 JSON text)"}}


# Trivial dependencies are async: FastAPI runs a sync one in the thread pool, a hop per dependency.
async def get_settings(request: Request) -> ServingSettings:
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A read-write session; the endpoint commits. Closing without a commit rolls back.

    Async on purpose: the session connects lazily, in the endpoint's worker thread, so
    this costs no thread hop; only closing (returning the connection) runs here.
    """
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


async def get_read_db(request: Request) -> AsyncIterator[Session]:
    """A read-only session that never waits for a writer (SQLite WAL)."""
    session = request.app.state.read_sessions()
    try:
        yield session
    finally:
        session.close()


async def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def get_model(holder: Annotated[ModelHolder, Depends(get_holder)]) -> LoadedModel:
    """The model for this request, read once: every part of the response uses this version."""
    loaded = holder.current
    if loaded is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return loaded


def _clinic_for(request: Request, key: str) -> int | None:
    with request.app.state.reader.connect() as connection:  # a Core connection: no ORM session needed
        return clinic_for_key(connection, key)


async def require_clinic(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> int:
    """The caller's clinic, from one indexed read of the key's digest.

    Run on the event loop on purpose: the lookup takes a fraction of a millisecond
    (a primary-key-like index hit), less than the hop to a worker thread would cost,
    and it is on every request. Revocation is immediate: nothing is cached.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UNAUTHORIZED
    clinic_id = _clinic_for(request, credentials.credentials)
    if clinic_id is None:
        raise UNAUTHORIZED
    return clinic_id


async def require_admin(
    settings: Annotated[ServingSettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    if credentials is None or not admin or not hmac.compare_digest(credentials.credentials.encode(), admin.encode()):
        raise UNAUTHORIZED


Db = Annotated[Session, Depends(get_db)]
ReadDb = Annotated[Session, Depends(get_read_db)]
Model = Annotated[LoadedModel, Depends(get_model)]
ClinicId = Annotated[int, Depends(require_clinic)]
Settings = Annotated[ServingSettings, Depends(get_settings)]
