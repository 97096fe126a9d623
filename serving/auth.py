"""The API key, checked from the headers before a ``/v1`` or ``/fhir/r4`` request's body is read (pure ASGI).

FastAPI reads and parses a route's body before it runs the route's dependencies, so with the
key checked only in ``deps.require_clinic`` a 300 MB body without a key was read and parsed
(44 s, 3.1 GB) before its 401. Here the same check, with the same parsing of the header,
answers 401 from the headers alone; the clinic it found is handed to ``require_clinic`` in
the request's state, so a request still costs one key lookup.

Order, documented in the README: a declared ``Content-Length`` over ``serving.max_body_bytes``
is 413 first (``BodyLimitMiddleware``, outside this one: no database read needed); a key
already seen valid that has ``serving.max_inflight_per_key`` requests in progress, or is over
its rate limit, is 429 next, before its lookup, so refusing a flooding clinic costs no
database read; then a missing, unknown or revoked key is 401, then the body is read. A 429
to a key that did not wait the ``Retry-After`` of its previous one is held until that time
(``serving.backoff``).
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import Request
from sqlalchemy import Engine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dropout_risk.serving import served_version
from dropout_risk.serving.backoff import Backoff
from dropout_risk.serving.deps import CLINIC_STATE, KEY_STATE, SERVED_STATE, UNAUTHORIZED, bearer
from dropout_risk.serving.headers import API_PREFIX, is_keyed
from dropout_risk.serving.inflight import InFlight
from dropout_risk.serving.keys import clinic_for_key, digest
from dropout_risk.serving.ratelimit import RateLimiter, retry_after

ADMIN_PREFIX = API_PREFIX + "/admin/"
# Takes a clinic's key (checked and limited here like any) or the admin key (let through to its route).
MONITORING_PATH = API_PREFIX + "/monitoring"


class KeyCheckMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        reader: Engine,
        limiter: RateLimiter | None = None,
        inflight: InFlight | None = None,
        backoff: Backoff | None = None,
        served_model: str | None = None,
        admin_key: str | None = None,
    ):
        self.app = app
        self.admin_key = admin_key  # GET /v1/monitoring with it goes to the route (deps.require_clinic_or_admin)
        self.reader = reader
        self.served_model = served_model  # read its served version on the key's connection (deps.current_model)
        self.limiter = limiter
        self.inflight = inflight
        self.backoff = backoff or Backoff()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        # The admin routes take no body; their key is the admin key, which require_admin checks.
        if not is_keyed(path) or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        credentials = await bearer(Request(scope))
        if path == MONITORING_PATH and credentials is not None and self._is_admin(credentials.credentials):
            await self.app(scope, receive, send)
            return
        if credentials is None:
            await _unauthorized()(scope, receive, send)
            return
        key = digest(credentials.credentials)
        # From here to inflight.enter nothing awaits: the checks and the count are one step on the event loop.
        refusal = self._over_limit(key, looked_up=False)
        clinic_id = None
        if refusal is None:
            clinic_id = self._clinic(credentials.credentials, scope)
            refusal = _unauthorized() if clinic_id is None else self._over_limit(key, looked_up=True)
        if refusal is not None:
            if refusal.status_code == 429:
                # Outside the checks above: holding a refusal takes nothing another request could need.
                await asyncio.sleep(self.backoff.hold(key, float(refusal.headers["Retry-After"])))
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})[CLINIC_STATE] = clinic_id
        scope["state"][KEY_STATE] = key
        if self.inflight is None:
            await self.app(scope, receive, send)
            return
        self.inflight.enter(key)
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight.leave(key)

    def _is_admin(self, token: str) -> bool:
        return bool(self.admin_key) and hmac.compare_digest(token.encode(), str(self.admin_key).encode())

    def _clinic(self, token: str, scope: Scope) -> int | None:
        # On the event loop, as require_clinic did: an indexed read, cheaper than a thread hop.
        with self.reader.connect() as connection:
            clinic_id = clinic_for_key(connection, token)
            if clinic_id is not None and self.served_model is not None:
                # The served version on the same connection: a second connection per request (and its
                # pre-ping) cost a scored request about 5 ms on the busy 2-core machine.
                scope.setdefault("state", {})[SERVED_STATE] = served_version.read(connection, self.served_model)
        return clinic_id

    def _over_limit(self, key: str, *, looked_up: bool) -> JSONResponse | None:
        """A 429 for a key at its in-flight cap or over its rate, else None (a rate token taken).

        Before the lookup (``looked_up=False``) only a key with a bucket, that is one seen valid,
        can be refused; a key not seen yet takes its token after the lookup.
        """
        if self.inflight is not None and self.inflight.full(key):
            return _too_many(f"at most {self.inflight.limit} requests in progress at once per API key", 1.0)
        if self.limiter is None:
            return None
        if (key in self.limiter) == looked_up:  # before the lookup only keys seen valid; after it only new ones
            return None
        wait = self.limiter.wait(key)
        if wait > 0:
            return _too_many(f"rate limit exceeded: at most {self.limiter.rate:g} requests a second per API key", wait)
        return None


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": UNAUTHORIZED.detail}, 401, headers=UNAUTHORIZED.headers)


def _too_many(detail: str, wait: float) -> JSONResponse:
    return JSONResponse({"detail": detail}, 429, headers={"Retry-After": retry_after(wait)})
