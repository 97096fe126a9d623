"""GET /v1/monitoring: served risks against outcomes, drift and a status, per clinic (serving.monitoring)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from dropout_risk.serving.deps import CLINIC_KEY_RESPONSES, ClinicOrAdmin, Holder, ReadDb, RiskMetrics, Settings
from dropout_risk.serving.monitoring.gauges import publish
from dropout_risk.serving.monitoring.report import Monitoring
from dropout_risk.serving.monitoring.service import ServedModelFacts, UnknownClinic, monitor
from dropout_risk.serving.schemas import ErrorBody

router = APIRouter(prefix="/v1/monitoring", tags=["monitoring"])


@router.get(
    "",
    response_model=Monitoring,
    responses={
        **CLINIC_KEY_RESPONSES,
        403: {"model": ErrorBody, "description": "A clinic's key asked for a clinic (it sees its own only)"},
        404: {"model": ErrorBody, "description": "No such clinic (admin key)"},
    },
)
def get_monitoring(
    request: Request,
    caller: ClinicOrAdmin,
    db: ReadDb,
    holder: Holder,
    settings: Settings,
    metrics: RiskMetrics,
    since: Annotated[dt.date | None, Query(description="episodes ended and clients started on or after")] = None,
    clinic: Annotated[str | None, Query(max_length=200, description="one clinic by name (admin key only)")] = None,
) -> Monitoring:
    """A clinic's key: its own clinic. The admin key: every clinic (or ``clinic``) and the whole service."""
    if caller is not None and clinic is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a clinic's key sees its own clinic only: leave out clinic")
    try:
        report = monitor(
            db,
            ServedModelFacts.of(holder.current),
            settings.monitoring,
            clinic_id=caller,
            clinic_name=clinic,
            since=since,
            whole_service=caller is None,
        )
    except UnknownClinic as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if request.app.state.leader.held():  # the gauges come from the leading process only (serving.leader)
        publish(metrics, report)
    return report
