"""The FastAPI application: create_app(settings) wires storage, the model, routes and errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from dropout_risk.features.config import load_settings
from dropout_risk.serving import served_version
from dropout_risk.serving.auth import KeyCheckMiddleware
from dropout_risk.serving.backoff import Backoff
from dropout_risk.serving.cds_hooks.tokens import TokenVerifier
from dropout_risk.serving.db import is_sqlite, make_engine, session_factory
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.headers import SecurityHeadersMiddleware
from dropout_risk.serving.inflight import InFlight
from dropout_risk.serving.leader import Leadership
from dropout_risk.serving.limits import BodyLimitMiddleware
from dropout_risk.serving.migrate import upgrade
from dropout_risk.serving.model_holder import ModelHolder
from dropout_risk.serving.monitoring.gauges import refresh_every
from dropout_risk.serving.observability import AccessMiddleware, Metrics
from dropout_risk.serving.ratelimit import RateLimiter
from dropout_risk.serving.recompute import RecomputeState, recompute_after_swaps
from dropout_risk.serving.routes import cds_hooks, clients, fhir, monitoring, operations, scoring, webhooks
from dropout_risk.serving.service import Invalid
from dropout_risk.serving.settings import ServingSettings
from dropout_risk.serving.ui import install as install_dashboard
from dropout_risk.serving.ui.auth import SECRET_ENV as UI_SECRET_ENV
from dropout_risk.serving.webhooks.worker import Deliverer

# What ``dropout-risk serve --workers N`` hands uvicorn: each worker process builds its app from the settings.
WORKER_APP = "dropout_risk.serving.app:worker_app"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def workers_refusal(settings: ServingSettings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve with these settings, or None.

    SQLite takes one writer at a time on one machine's file: several processes would queue on its
    lock (and replicas on other machines cannot share it). Without a shared dashboard secret each
    process would sign cookies with its own random one, and a clinician would be signed out
    whenever the balancer switched process.
    """
    if workers <= 1:
        return None
    if is_sqlite(settings.database_url):
        return (
            f"--workers {workers} needs PostgreSQL: database_url (DROPOUT_RISK_DATABASE_URL) is SQLite, "
            "which serves one process; set it to postgresql+psycopg://user@host/db, or run --workers 1"
        )
    if not os.environ.get(UI_SECRET_ENV):
        return (
            f"--workers {workers} needs {UI_SECRET_ENV}: without it each process signs dashboard cookies "
            "with its own random secret; set the same long random value for every process"
        )
    return None


def worker_app() -> FastAPI:
    """The app of one worker of ``serve --workers N`` (uvicorn calls this in each process it starts)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return create_app(load_settings(ServingSettings))


def _problems(errors: Sequence[Any]) -> list[dict[str, object]]:
    """Validation errors without the input values pydantic would echo (health data)."""
    return [
        {
            # A dict key in ``loc`` is the client's text: a lone surrogate there could not be sent as JSON.
            "loc": [
                p if isinstance(p, int) else str(p).encode("utf-8", "replace").decode() for p in error.get("loc", ())
            ],
            "msg": error.get("msg", "invalid"),
            "type": error.get("type", "value_error"),
        }
        for error in errors
    ]


def _background_tasks(app: FastAPI, poll: bool) -> list[asyncio.Task]:
    """The alias poll, the gauges' refresh and the recompute after a swap (``poll``), and webhook deliveries."""
    settings: ServingSettings = app.state.settings
    tasks = [asyncio.create_task(app.state.holder.poll(settings.serving.poll_interval_seconds))] if poll else []
    if poll and settings.monitoring.refresh_seconds > 0:
        tasks.append(asyncio.create_task(refresh_every(app, settings.monitoring.refresh_seconds)))
    if poll and settings.serving.recompute_interval_seconds > 0:
        tasks.append(asyncio.create_task(recompute_after_swaps(app, settings.serving.recompute_interval_seconds)))
    # Webhook deliveries: every process sends what is due (claims keep two from sending one at once).
    deliverer = Deliverer(app.state.engine, app.state.reader, settings.webhooks)
    tasks.append(asyncio.create_task(deliverer.run()))
    return tasks


def create_app(settings: ServingSettings, *, holder: ModelHolder | None = None, poll: bool = True) -> FastAPI:
    engine = make_engine(settings.database_url)
    reader = make_engine(settings.database_url, writer=False)
    holder = holder or ModelHolder(settings.serving.model_uri)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, engine)
        # Before the first load: every version this process serves is written first (serving.served_version).
        await asyncio.to_thread(holder.attach, functools.partial(served_version.announce, engine))
        if holder.current is None:
            await asyncio.to_thread(holder.refresh)
        tasks = _background_tasks(app, poll)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.state.leader.release()
            engine.dispose()
            reader.dispose()

    app = FastAPI(
        title="dropout-risk",
        version="1",
        summary="Calibrated, explained psychotherapy dropout risk from session scores.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.reader = reader
    app.state.read_sessions = session_factory(reader)
    app.state.holder = holder
    app.state.registry = settings.registry()
    app.state.fhir_codes = CodeMap.of(app.state.registry, settings.fhir.codes)
    app.state.cds_verifier = TokenVerifier(settings.cds_hooks, engine)
    app.state.metrics = Metrics()
    app.state.recompute = RecomputeState()
    app.state.leader = Leadership(engine)
    _add_middleware(app, settings, reader, holder)
    for router in (clients, scoring, operations, monitoring, fhir, cds_hooks, webhooks):
        app.include_router(router.router)
    app.include_router(fhir.public_router)  # GET /fhir/r4/metadata, without a key
    install_dashboard(app)  # the clinician dashboard at /ui

    _add_error_handlers(app)
    return app


def _add_middleware(app: FastAPI, settings: ServingSettings, reader: Engine, holder: ModelHolder) -> None:
    # The key before the body (innermost of the three): a request without a valid key is 401 unread.
    rate, inflight_cap = settings.serving.rate_limit, settings.serving.max_inflight_per_key
    limiter = RateLimiter(rate, settings.serving.rate_limit_burst) if rate > 0 else None
    app.state.limiter = limiter  # routes charge the work they find in the body (deps.get_work_meter)
    cds = settings.cds_hooks  # CDS Hooks callers carry no API key: their own limit, per issuer (routes.cds_hooks)
    app.state.cds_limiter = RateLimiter(cds.rate_limit, cds.rate_limit_burst) if cds.rate_limit > 0 else None
    inflight = InFlight(inflight_cap) if inflight_cap > 0 else None
    backoff = Backoff()
    for table, state in (("rate", limiter), ("in_flight", inflight), ("backoff", backoff)):
        if state is not None:
            app.state.metrics.watch_limit(table, state)
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    app.add_middleware(
        KeyCheckMiddleware,
        reader=reader,
        limiter=limiter,
        inflight=inflight,
        backoff=backoff,
        served_model=holder.name,
        admin_key=admin_key,
    )
    # Inside the access middleware, so a refused body is counted and logged like any answer.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.serving.max_body_bytes,
        body_timeout=settings.serving.body_timeout_seconds,
    )
    # Outside every route and handler: the one place an unhandled error is answered (500) and logged.
    app.add_middleware(AccessMiddleware, metrics=app.state.metrics)
    # Outermost (added last), so the 500 AccessMiddleware answers carries the headers too.
    app.add_middleware(SecurityHeadersMiddleware)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _problems(exc.errors())}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(Invalid)
    async def _invalid_history(_request: Request, exc: Invalid) -> JSONResponse:
        detail = [{"loc": list(p.loc), "msg": p.msg, "type": "value_error"} for p in exc.problems]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
