"""Health, readiness, metrics and the admin reload: no client data here."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from dropout_risk.serving.deps import UNAUTHORIZED_RESPONSE, Admin, DbEngine, Holder, RiskMetrics

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: no model loaded or database unreachable"}})
def readyz(request: Request, holder: Holder, engine: DbEngine, response: Response) -> dict:
    """Ready when a model is loaded and the database answers.

    "degraded" when the registry is unreachable, or the version it names failed to load
    (``model.load_failed`` says which version and why; the previous version keeps serving).
    """
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # any driver error means not reachable
        database = "unreachable"
    loaded = holder.current
    model: dict[str, object] = {
        "loaded": loaded is not None,
        "version": loaded.version if loaded else None,
        "registry": "reachable" if holder.registry_reachable else "unreachable",
    }
    if holder.load_failure is not None:  # the version the registry names cannot be loaded: which, and why
        model["load_failed"] = holder.load_failure.as_dict()
    recompute = getattr(request.app.state, "recompute", None)
    if recompute is not None:  # the ongoing clients' current risks recomputed after the last swap
        model["current_risks"] = {"version": recompute.version, "recomputed": recompute.done}
    ready = loaded is not None and database == "ok"
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        state = "not_ready"
    else:
        state = "ready" if holder.registry_reachable and holder.load_failure is None else "degraded"
    return {"status": state, "database": database, "model": model}


@router.get("/metrics", include_in_schema=False)
def metrics(holder: Holder, metrics: RiskMetrics) -> Response:
    loaded = holder.current
    if loaded is not None:
        metrics.set_model(loaded.name, loaded.version)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/admin/reload", tags=["admin"], responses=UNAUTHORIZED_RESPONSE)
async def reload(_admin: Admin, holder: Holder) -> dict:
    """Check the registry now and swap to the aliased version if it moved (admin key)."""
    swapped = await asyncio.to_thread(holder.refresh)
    loaded = holder.current
    answer: dict[str, object] = {
        "swapped": swapped,
        "version": loaded.version if loaded else None,
        "registry": "reachable" if holder.registry_reachable else "unreachable",
    }
    if holder.load_failure is not None:
        answer["load_failed"] = holder.load_failure.as_dict()
    return answer
