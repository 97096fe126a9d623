"""Prometheus metrics and an access log that never names a client.

The route *template* is recorded ("/v1/clients/{client_id}/sessions"), never
the path a request used, which would carry a client identifier. Labels are
bounded: a method outside ``KNOWN_METHODS`` and a path no route matches are
``other``, so unauthenticated requests with made-up methods or paths cannot
grow /metrics without bound.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sized

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
access_log = logging.getLogger("dropout_risk.access")
error_log = logging.getLogger("dropout_risk.app")


class Metrics:
    """One registry per app, so several apps (tests) never share counters.

    Every series carries a ``worker`` label, the process id: behind ``serve --workers N`` a scrape
    reaches whichever worker accepts it, and each worker's counters stay series of their own (sum
    them by the other labels; a scrape of one worker is not a reset of another's counter).
    """

    def __init__(self, worker: str | None = None) -> None:
        self.worker = worker or str(os.getpid())
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dropout_risk_requests_total",
            "HTTP requests",
            ["method", "route", "status", "worker"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dropout_risk_request_seconds",
            "Request latency",
            ["method", "route", "worker"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.risks = Histogram(
            "dropout_risk_risks_served",
            "Risk probabilities served",
            ["worker"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
            registry=self.registry,
        )
        self.bands = Counter(
            "dropout_risk_risk_bands_total", "Risks served by band", ["band", "worker"], registry=self.registry
        )
        self.model_version = Gauge(
            "dropout_risk_model_version",
            "Model version being served (1 = current)",
            ["name", "version", "worker"],
            registry=self.registry,
        )
        self.limit_keys = Gauge(
            "dropout_risk_limit_keys",
            "API keys the per-key limits hold state for now (rate, in_flight, backoff)",
            ["table", "worker"],
            registry=self.registry,
        )
        self.monitoring = {
            name: Gauge(f"dropout_risk_monitoring_{name}", text, ["clinic", "worker"], registry=self.registry)
            for name, text in (
                ("oe", "Observed over expected dropouts of ended episodes served by the current model"),
                ("ece", "Expected calibration error of those risks"),
                ("ended_episodes", "Ended episodes served by the current model"),
                ("status", "Monitoring status: 0 ok, 1 watch, 2 recalibrate, 3 retrain"),
            )
        }
        self._version: tuple[str, str] | None = None

    def watch_limit(self, table: str, state: Sized) -> None:
        """Reports ``len(state)`` at each scrape: that flooding cannot grow it is visible from outside."""
        self.limit_keys.labels(table, self.worker).set_function(lambda: len(state))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status), self.worker).inc()
        self.latency.labels(method, route, self.worker).observe(seconds)

    def observe_risk(self, probability: float, band: str) -> None:
        self.risks.labels(self.worker).observe(probability)
        self.bands.labels(band, self.worker).inc()

    def set_monitoring(self, clinic: str, figures: dict[str, float | None]) -> None:
        """The monitor's figures for one clinic (``oe``, ``ece``, ``ended_episodes``, ``status``); NaN when unknown."""
        for name, gauge in self.monitoring.items():
            value = figures.get(name)
            gauge.labels(clinic, self.worker).set(float("nan") if value is None else value)

    def set_model(self, name: str, version: str) -> None:
        if self._version == (name, version):
            return
        if self._version is not None:
            self.model_version.labels(*self._version, self.worker).set(0)
        self.model_version.labels(name, version, self.worker).set(1)
        self._version = (name, version)


def method_label(scope: Scope) -> str:
    method = scope["method"]
    return method if method in KNOWN_METHODS else OTHER


def route_template(request: Request) -> str:
    route = request.scope.get("route")  # set by the router once it has matched
    if route is not None:
        return getattr(route, "path", OTHER)
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", OTHER)
    return OTHER


class AccessMiddleware:
    """Counts, times and logs every HTTP request (pure ASGI: BaseHTTPMiddleware costs a task per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_status)
            except Exception as exc:
                # The one place an unhandled error is answered and logged, never re-raised: Starlette re-raises
                # it to the server, which logs its message and traceback (a driver error names the client id
                # and the scores it was writing), and drops the connection. The type and the route only.
                error_log.error(
                    "internal error on %s %s: %s",
                    method_label(scope),
                    route_template(Request(scope)),
                    type(exc).__name__,
                )
                if not started:
                    await JSONResponse({"detail": "internal error"}, status_code=500)(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            method, route = method_label(scope), route_template(Request(scope))
            self.metrics.observe_request(method, route, status, elapsed)
            access_log.info("%s %s %d %.1fms", method, route, status, elapsed * 1000)
