"""How every dashboard answer is made: a template or a redirect, always with the security headers."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from dropout_risk.serving.monitoring.html import number as fixed_number
from dropout_risk.serving.ui import charts
from dropout_risk.serving.ui.auth import SignedInClinic, clear_session

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["percent"] = charts.percent
templates.env.filters["number"] = charts.number
templates.env.filters["points"] = charts.points
templates.env.filters["fixed"] = fixed_number

SECURITY_HEADERS = {
    "Cache-Control": "no-store",  # health data: not in the browser's or a proxy's cache
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
BAND_TEXT = {"low": "Low risk", "moderate": "Moderate risk", "high": "High risk"}


def dashboard_router() -> APIRouter:
    """A router for dashboard pages: below /ui, left out of the API's OpenAPI schema."""
    return APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


def base(request: Request) -> str:
    return request.scope.get("root_path", "") + "/ui"


def client_path(client_id: str) -> str:
    """A client's page below /ui (the id quoted: it may hold characters a path cannot)."""
    return "/clients/" + urllib.parse.quote(client_id, safe="")


def client_url(request: Request, client_id: str) -> str:
    return base(request) + client_path(client_id)


def redirect(request: Request, path: str) -> RedirectResponse:
    response = RedirectResponse(base(request) + path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    context = {"base": base(request), "band_text": BAND_TEXT, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def message(request: Request, user: SignedInClinic | None, title: str, text: str, status: int) -> HTMLResponse:
    return page(request, "message.html", {"user": user, "title": title, "text": text}, status)


def to_login(request: Request) -> RedirectResponse:
    """To the sign-in page, ending whatever session the cookie held."""
    response = redirect(request, "/login")
    clear_session(request, response)
    return response
