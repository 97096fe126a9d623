"""FastAPI dependencies: settings, database sessions, the model, metrics, the caller's clinic.

The one place that reads ``app.state`` (set up by ``serving.app.create_app``): routes
declare what they need with the ``Annotated`` aliases at the bottom.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.serving import served_version
from dropout_risk.serving.cds_hooks.tokens import TokenVerifier
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.keys import clinic_for_key
from dropout_risk.serving.model_holder import LoadedModel, ModelHolder
from dropout_risk.serving.observability import Metrics
from dropout_risk.serving.ratelimit import RateLimiter, WorkMeter
from dropout_risk.serving.schemas import ErrorBody
from dropout_risk.serving.scoring import ScoringContext
from dropout_risk.serving.settings import ServingSettings

# The request-state key under which serving.auth.KeyCheckMiddleware leaves the clinic it checked.
CLINIC_STATE = "dropout_risk_clinic_id"
# ... and the served version it read on the same connection (serving.served_version), for current_model.
SERVED_STATE = "dropout_risk_served_version"
# ... and the digest of the key it checked, under which the rate limiter keeps its bucket (get_work_meter).
KEY_STATE = "dropout_risk_key_digest"
bearer = HTTPBearer(auto_error=False, description="A clinic's API key (dropout-risk keys create --clinic NAME)")
UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "missing, unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
)
# The answers the dependencies and body parsing give, documented on the routes that can give them.
Responses = dict[int | str, dict[str, Any]]  # FastAPI's type of a route's ``responses``
UNAUTHORIZED_RESPONSE: Responses = {401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"}}
# A clinic's key is also rate limited (serving.auth.KeyCheckMiddleware); the admin key is not.
CLINIC_KEY_RESPONSES: Responses = {
    **UNAUTHORIZED_RESPONSE,
    429: {"model": ErrorBody, "description": "Over the key's rate limit (serving.rate_limit); see Retry-After"},
}
NO_MODEL_RESPONSE: Responses = {503: {"model": ErrorBody, "description": "No model loaded yet"}}
BAD_BODY_RESPONSE: Responses = {
    400: {"model": ErrorBody, "description": "The body cannot be read (not UTF-8 JSON text)"}
}


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


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_reader(request: Request) -> Engine:
    return request.app.state.reader


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_registry(request: Request) -> InstrumentRegistry:
    return request.app.state.registry


async def get_code_map(request: Request) -> CodeMap:
    """Which instrument a FHIR code names: the registry's codes and ``[[fhir.codes]]``, built at start."""
    return request.app.state.fhir_codes


async def get_cds_verifier(request: Request) -> TokenVerifier:
    """The CDS Hooks callers' JWT check (``[[cds_hooks.clients]]``), built at start."""
    return request.app.state.cds_verifier


async def get_cds_limiter(request: Request) -> RateLimiter | None:
    """The CDS Hooks callers' per-issuer rate limit (``[cds_hooks] rate_limit``); None when off."""
    return request.app.state.cds_limiter


async def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def current_model(request: Request, holder: ModelHolder) -> LoadedModel | None:
    """The version to answer with: the newest any process serves (serving.served_version).

    The shared row is read with the key, on the key check's connection (serving.auth), or here on
    the event loop (one primary-key read) for a request that had no key check; only a process found
    behind hops to a thread, to load the version before answering.
    """
    served = getattr(request.state, SERVED_STATE, None)
    if served is None:
        with request.app.state.reader.connect() as connection:
            served = served_version.read(connection, holder.name)
    if holder.behind(served):
        assert served is not None  # behind() is False without a row
        await asyncio.to_thread(holder.catch_up, served)
    return holder.current


async def get_model(request: Request, holder: Annotated[ModelHolder, Depends(get_holder)]) -> LoadedModel:
    """The model for this request, read once: every part of the response uses this version."""
    loaded = await current_model(request, holder)
    if loaded is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return loaded


async def get_scoring(
    model: Annotated[LoadedModel, Depends(get_model)],
    registry: Annotated[InstrumentRegistry, Depends(get_registry)],
    settings: Annotated[ServingSettings, Depends(get_settings)],
) -> ScoringContext:
    """Everything scoring reads, from the request's one model version; 503 when no model is loaded."""
    return ScoringContext.of(model, registry, settings.serving.bands)


async def get_optional_scoring(
    request: Request,
    holder: Annotated[ModelHolder, Depends(get_holder)],
    registry: Annotated[InstrumentRegistry, Depends(get_registry)],
    settings: Annotated[ServingSettings, Depends(get_settings)],
) -> ScoringContext | None:
    """As ``get_scoring``, or None while no model is loaded (for routes that still answer then)."""
    loaded = await current_model(request, holder)
    return None if loaded is None else ScoringContext.of(loaded, registry, settings.serving.bands)


async def require_clinic(
    request: Request,
    reader: Annotated[Engine, Depends(get_reader)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    """The caller's clinic, from one indexed read of the key's digest.

    ``serving.auth.KeyCheckMiddleware`` has normally done that read already, before the body
    was read, and left the clinic in the request's state; the read here is for an app without it.
    Run on the event loop on purpose: the lookup takes a fraction of a millisecond
    (a primary-key-like index hit), less than the hop to a worker thread would cost,
    and it is on every request. Revocation is immediate: nothing is cached.
    """
    checked = getattr(request.state, CLINIC_STATE, None)
    if isinstance(checked, int):
        return checked
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UNAUTHORIZED
    with reader.connect() as connection:  # a Core connection: no ORM session needed
        clinic_id = clinic_for_key(connection, credentials.credentials)
    if clinic_id is None:
        raise UNAUTHORIZED
    return clinic_id


def _is_admin(settings: ServingSettings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    return bool(
        credentials is not None and admin and hmac.compare_digest(credentials.credentials.encode(), admin.encode())
    )


async def require_admin(
    settings: Annotated[ServingSettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    if not _is_admin(settings, credentials):
        raise UNAUTHORIZED


async def get_work_meter(request: Request) -> WorkMeter:
    """The caller's rate-limit bucket, for a route that charges the work it finds in the body."""
    return WorkMeter(
        getattr(request.app.state, "limiter", None),
        getattr(request.state, KEY_STATE, None),
        request.app.state.settings.serving.rate_limit_sessions,
    )


async def require_clinic_or_admin(
    request: Request,
    reader: Annotated[Engine, Depends(get_reader)],
    settings: Annotated[ServingSettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int | None:
    """The caller's clinic for a clinic's key, None for the admin key (every clinic); 401 otherwise."""
    if _is_admin(settings, credentials):
        return None
    return await require_clinic(request, reader, credentials)


Db = Annotated[Session, Depends(get_db)]
ReadDb = Annotated[Session, Depends(get_read_db)]
Holder = Annotated[ModelHolder, Depends(get_holder)]
Model = Annotated[LoadedModel, Depends(get_model)]
Scoring = Annotated[ScoringContext, Depends(get_scoring)]
MaybeScoring = Annotated[ScoringContext | None, Depends(get_optional_scoring)]
Registry = Annotated[InstrumentRegistry, Depends(get_registry)]
Codes = Annotated[CodeMap, Depends(get_code_map)]
CdsVerifier = Annotated[TokenVerifier, Depends(get_cds_verifier)]
CdsLimiter = Annotated[RateLimiter | None, Depends(get_cds_limiter)]
RiskMetrics = Annotated[Metrics, Depends(get_metrics)]
DbEngine = Annotated[Engine, Depends(get_engine)]
ClinicId = Annotated[int, Depends(require_clinic)]
Settings = Annotated[ServingSettings, Depends(get_settings)]
Work = Annotated[WorkMeter, Depends(get_work_meter)]
Admin = Annotated[None, Depends(require_admin)]
ClinicOrAdmin = Annotated[int | None, Depends(require_clinic_or_admin)]
