"""/cds-services: CDS Hooks discovery and the ``patient-view`` card, for record systems that sign JWTs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.serving.cds_hooks.assess import assess, prefetched_entries
from dropout_risk.serving.cds_hooks.cards import card
from dropout_risk.serving.cds_hooks.discovery import PREFETCH_KEY, SERVICE_ID, discovery
from dropout_risk.serving.cds_hooks.request import HookRequest
from dropout_risk.serving.cds_hooks.tokens import Caller, InvalidToken
from dropout_risk.serving.deps import NO_MODEL_RESPONSE, CdsLimiter, CdsVerifier, Codes, Db, Scoring, Settings, bearer
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.ratelimit import retry_after
from dropout_risk.serving.scoring import ScoringContext
from dropout_risk.serving.settings import ServingSettings
from dropout_risk.serving.tables import Clinic

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])
REFUSED = {"detail": "a JWT bearer signed by a registered CDS client is required"}


def _unauthorized() -> JSONResponse:
    return JSONResponse(REFUSED, status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


@router.get("")
async def list_services(codes: Codes) -> dict[str, Any]:
    """CDS Hooks discovery: the patient-view service and its prefetch template."""
    return discovery(codes)


@router.post(
    f"/{SERVICE_ID}",
    responses={
        401: {"description": "No valid JWT from a registered CDS client"},
        429: {"description": "Over the caller's rate limit ([cds_hooks] rate_limit, per issuer); see Retry-After"},
        **NO_MODEL_RESPONSE,
    },
)
async def patient_view(
    request: Request,
    verifier: CdsVerifier,
    limiter: CdsLimiter,
    settings: Settings,
    codes: Codes,
    scoring: Scoring,
    db: Db,
) -> JSONResponse:
    """The client's dropout risk as a card (none before the client's first session).

    The caller is known once its token verifies: only then is its issuer's bucket consulted (so a forged
    token cannot spend a real caller's limit), before the body is read or anything is scored.
    """
    credentials = await bearer(request)
    if credentials is None:
        return _unauthorized()
    try:
        caller = await asyncio.to_thread(verifier.verify, credentials.credentials, _audience(request, settings))
    except InvalidToken as exc:
        log.info("CDS Hooks request refused: %s", exc)  # the reason's kind, never the token
        return _unauthorized()
    wait = limiter.wait(caller.client.issuer) if limiter is not None else 0.0
    if wait > 0:
        detail = f"rate limit exceeded: at most {settings.cds_hooks.rate_limit:g} hook calls a second per CDS client"
        return JSONResponse({"detail": detail}, 429, headers={"Retry-After": retry_after(wait)})
    try:
        hook = HookRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    link = _dashboard_link(request, settings, hook.context.patientId)
    cards = await asyncio.to_thread(
        _cards, db, caller, hook, _Scoring(codes, scoring, settings.webhooks.band_rise), link
    )
    if cards is None:
        return _unauthorized()
    return JSONResponse({"cards": cards})


@dataclass(frozen=True)
class _Scoring:
    codes: CodeMap
    context: ScoringContext
    band_rise: float


def _cards(db: Session, caller: Caller, hook: HookRequest, scoring: _Scoring, link: str) -> list[dict[str, Any]] | None:
    """The card (or none); None when the caller's clinic does not exist (a configuration error: 401)."""
    clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == caller.client.clinic))
    if clinic_id is None:
        log.warning("CDS Hooks client %s names a clinic that does not exist", caller.client.issuer)
        return None
    client_id = hook.context.patientId
    prefetched = prefetched_entries((hook.prefetch or {}).get(PREFETCH_KEY), client_id)
    store = caller.client.store_observations
    assessment = assess(db, clinic_id, client_id, prefetched, store, scoring.codes, scoring.context, scoring.band_rise)
    return [] if assessment is None else [card(assessment.risk, assessment.previous, link)]


def _audience(request: Request, settings: ServingSettings) -> str:
    """This service's URL, as the JWT's ``aud`` must name it (the specification's audience)."""
    base = settings.cds_hooks.base_url
    if base:
        return f"{base.rstrip('/')}/cds-services/{SERVICE_ID}"
    return str(request.url.replace(query=""))


def _dashboard_link(request: Request, settings: ServingSettings, client_id: str) -> str:
    base = (settings.cds_hooks.dashboard_url or str(request.base_url)).rstrip("/")
    return f"{base}/ui/clients/{quote(client_id, safe='')}"
