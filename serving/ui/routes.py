"""/ui: the clinician dashboard, server-rendered (Jinja2 templates, inline SVG charts).

Pages: sign in and out (``signin``), the caseload (``caseload``: clients by current
risk, band, last session, flags, a risk sparkline), a client (``client``: scores
and risk by session, the latest risk's factors and next steps, a form that records
the next session), and the clinic's monitoring (``monitoring``: issue 13).

The access log records route templates only; form errors name the field and the
rule, never the value typed.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from dropout_risk.serving.ui import caseload, client, monitoring, signin
from dropout_risk.serving.ui.deps import NotSignedIn, not_signed_in
from dropout_risk.serving.ui.pages import STATIC_DIR

router = APIRouter()
router.include_router(signin.router)
router.include_router(caseload.router)
router.include_router(client.router)
router.include_router(monitoring.router)


def install(app: FastAPI) -> None:
    """The dashboard at /ui: its pages, its local CSS and JavaScript, and the redirect to sign in."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(NotSignedIn, not_signed_in)
