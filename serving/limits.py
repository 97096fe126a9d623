"""A cap on request bodies, in size and in time, enforced while they arrive (pure ASGI).

Without it a 300 MB body was buffered whole (0.45 to 3.1 GB of memory) before any
route could refuse it. A declared ``Content-Length`` over the cap is answered 413
at once, nothing read; a body without one (chunked) is counted as it arrives and
refused at the first chunk past the cap. A body must also arrive whole within
``body_timeout`` seconds of the first read, else 408: a half-sent request held its
connection open forever.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes an HTTPException from body reading through as it is."""

    def __init__(self, limit: int):
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, f"request body larger than {limit} bytes")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float):
        super().__init__(status.HTTP_408_REQUEST_TIMEOUT, f"request body not received within {seconds:g} seconds")


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length; counting still bounds the body
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float):
        self.app = app
        self.limit = max_body_bytes
        self.timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(self.limit)
        length = declared_length(scope)
        if length is not None and length > self.limit:
            await JSONResponse({"detail": too_large.detail}, status_code=too_large.status_code)(scope, receive, send)
            return
        received = 0
        started = False
        complete = False
        deadline: float | None = None

        async def counted() -> Message:
            nonlocal received, complete, deadline
            if received > self.limit:
                raise too_large  # the app asked again after the refusal: still refused, nothing more read
            if complete:
                return await receive()  # after the body only a disconnect comes, whenever it comes
            deadline = deadline if deadline is not None else time.monotonic() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.limit:
                    raise too_large
            return message

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, track)
        except (BodyTooLarge, BodyTimeout) as refusal:
            # Reached here only where no exception handler answered it (one reading the body outside a route).
            if started:
                raise
            await JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)(scope, receive, send)
