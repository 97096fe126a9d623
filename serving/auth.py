"""The API key, checked from the headers before a ``/v1`` request's body is read (pure ASGI).

FastAPI reads and parses a route's body before it runs the route's dependencies, so with the
key checked only in ``deps.require_clinic`` a 300 MB body without a key was read and parsed
(44 s, 3.1 GB) before its 401. Here the same check, with the same parsing of the header,
answers 401 from the headers alone; the clinic it found is handed to ``require_clinic`` in
the request's state, so a request still costs one key lookup.

Order, documented in the README: a declared ``Content-Length`` over ``serving.max_body_bytes``
is 413 first (``BodyLimitMiddleware``, outside this one: no database read needed), then a
missing, unknown or revoked key is 401, then the body is read.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dropout_risk.serving.deps import CLINIC_STATE, UNAUTHORIZED, bearer
from dropout_risk.serving.headers import API_PREFIX
from dropout_risk.serving.keys import clinic_for_key, digest
from dropout_risk.serving.ratelimit import RateLimiter, retry_after

ADMIN_PREFIX = API_PREFIX + "/admin/"


class KeyCheckMiddleware:
    def __init__(self, app: ASGIApp, reader: Engine, limiter: RateLimiter | None = None):
        self.app = app
        self.reader = reader
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        # The admin routes take no body; their key is the admin key, which require_admin checks.
        if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")) or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        credentials = await bearer(Request(scope))
        clinic_id = None
        if credentials is not None:
            # On the event loop, as require_clinic did: an indexed read, cheaper than a thread hop.
            with self.reader.connect() as connection:
                clinic_id = clinic_for_key(connection, credentials.credentials)
        if clinic_id is None:
            refusal = JSONResponse({"detail": UNAUTHORIZED.detail}, 401, headers=UNAUTHORIZED.headers)
            await refusal(scope, receive, send)
            return
        if self.limiter is not None and credentials is not None:
            wait = self.limiter.wait(digest(credentials.credentials))
            if wait > 0:
                limited = JSONResponse(
                    {"detail": f"rate limit exceeded: at most {self.limiter.rate:g} requests a second per API key"},
                    429,
                    headers={"Retry-After": retry_after(wait)},
                )
                await limited(scope, receive, send)
                return
        scope.setdefault("state", {})[CLINIC_STATE] = clinic_id
        await self.app(scope, receive, send)
