"""/ui/monitoring: the signed-in clinic's monitoring (serving.monitoring), with its calibration plot."""

from __future__ import annotations

import base64

from fastapi import Request
from fastapi.responses import Response

from dropout_risk.serving.deps import Holder, ReadDb, Settings
from dropout_risk.serving.monitoring.plot import calibration_png
from dropout_risk.serving.monitoring.service import ServedModelFacts, monitor
from dropout_risk.serving.ui.deps import SignedIn
from dropout_risk.serving.ui.pages import dashboard_router, page

router = dashboard_router()


@router.get("/monitoring")
def monitoring_page(request: Request, user: SignedIn, db: ReadDb, holder: Holder, settings: Settings) -> Response:
    """How the served risks matched what happened at this clinic, drift, and its status (aggregates only)."""
    report = monitor(db, ServedModelFacts.of(holder.current), settings.monitoring, clinic_id=user.clinic_id)
    clinic = report.clinics[0]
    plot = None
    if clinic.current is not None:
        plot = "data:image/png;base64," + base64.b64encode(calibration_png([clinic])).decode()
    context = {"user": user, "report": report, "clinic": clinic, "plot": plot, "title": "Monitoring"}
    return page(request, "monitoring.html", context)
