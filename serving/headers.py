"""Response headers every response needs whatever route answered it, errors included.

- ``/v1`` and ``/fhir/r4`` responses carry health data: ``Cache-Control: no-store`` keeps them out of
  browser and proxy caches (the dashboard's pages set it themselves).
- Over HTTPS, ``Strict-Transport-Security`` tells the browser never to fall back to
  plain HTTP. Over plain HTTP a browser ignores it, so it is not sent there. Behind a
  TLS-terminating proxy the scheme is HTTPS only if uvicorn trusts the proxy's
  ``X-Forwarded-Proto`` (from 127.0.0.1 by default; ``FORWARDED_ALLOW_IPS`` for others).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/v1"
FHIR_PREFIX = "/fhir/r4"
# Paths that carry a clinic's data under its API key (serving.auth) and must not be cached.
KEYED_PREFIXES = (API_PREFIX, FHIR_PREFIX)
# ... but for FHIR's capabilities interaction: a CapabilityStatement, read before a client has credentials.
FHIR_METADATA = FHIR_PREFIX + "/metadata"


# ... and the CDS Hooks service, whose callers sign JWTs instead (serving.cds_hooks): its cards carry risks too.
NO_STORE_PREFIXES = (*KEYED_PREFIXES, "/cds-services")


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def is_keyed(path: str) -> bool:
    return _under(path, KEYED_PREFIXES) and path != FHIR_METADATA


HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        no_store = _under(path, NO_STORE_PREFIXES)
        https = scope.get("scheme") == "https"

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if no_store:
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, add_headers)
