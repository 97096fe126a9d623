"""/ui/clients and /ui/open: the caseload by current risk, each row with its flags and a risk sparkline."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.serving import service
from dropout_risk.serving.deps import Holder, ReadDb, Settings
from dropout_risk.serving.settings import RiskBands
from dropout_risk.serving.store import SESSIONS
from dropout_risk.serving.tables import Client
from dropout_risk.serving.ui import charts
from dropout_risk.serving.ui.deps import SignedIn
from dropout_risk.serving.ui.pages import client_path, client_url, dashboard_router, message, page, redirect
from dropout_risk.serving.values import query_int

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:@~-]{1,200}$")  # serving.schemas.ClientId

router = dashboard_router()
PageNumber = Annotated[str, Query(alias="page")]  # text: a page number that is not one shows the first page


@dataclass(frozen=True)
class TrendPoint:
    """The risk stored with one session: what a caseload row shows of it."""

    session_number: int
    probability: float
    band: str
    flags: list[str]  # the texts of the flags that fired


def _flag_texts(flags: object) -> list[str]:
    if not isinstance(flags, list):
        return []
    return [str(f.get("text", f.get("flag", ""))) for f in flags if isinstance(f, dict)]


def _trends(db: Session, client_pks: list[int]) -> dict[int, list[TrendPoint]]:
    """Each client's stored risks by session, for the whole page in one query.

    Only the probability, band and flags are read out of each stored risk (JSON).
    """
    if not client_pks:
        return {}
    risk = SESSIONS.c.risk
    rows = db.execute(
        select(
            SESSIONS.c.client_pk,
            SESSIONS.c.session_number,
            risk["probability"].as_float(),
            risk["band"].as_string(),
            risk["flags"],
        )
        .where(SESSIONS.c.client_pk.in_(client_pks))
        .order_by(SESSIONS.c.client_pk, SESSIONS.c.session_number)
    )
    out: dict[int, list[TrendPoint]] = defaultdict(list)
    for pk, number, probability, band, flags in rows:
        if probability is not None:
            out[pk].append(TrendPoint(number, float(probability), band or "", _flag_texts(flags)))
    return out


def _row(request: Request, client: Client, trend: list[TrendPoint], bands: RiskBands) -> dict[str, Any]:
    # The flags of the risk the caseload sorts by (the latest session's), else of the last stored one.
    latest = next((t for t in reversed(trend) if t.session_number == client.current_session), None)
    latest = latest or (trend[-1] if trend else None)
    sparkline = charts.sparkline(
        [t.probability for t in trend],
        [t.band for t in trend],
        moderate=bands.moderate,
        high=bands.high,
        prefix=f"spark-{client.id}",
    )
    return {
        "client_id": client.external_id,
        "url": client_url(request, client.external_id),
        "status": client.status,
        "probability": client.current_probability,
        "band": client.current_band,
        "sessions": client.current_session,
        "last_session_date": client.last_session_date,
        "flags": latest.flags if latest else [],
        "sparkline": Markup(sparkline),
    }


@router.get("/clients")
def caseload(
    request: Request, user: SignedIn, db: ReadDb, settings: Settings, holder: Holder, page_number: PageNumber = "1"
) -> Response:
    bands, size = settings.serving.bands, settings.serving.page_size
    parsed = query_int(page_number)
    number = parsed if parsed is not None and 0 < parsed <= 100_000 else 1
    clients, total = service.caseload(db, user.clinic_id, "risk", number, size)
    trends = _trends(db, [c.id for c in clients])
    rows = [_row(request, c, trends.get(c.id, []), bands) for c in clients]
    view = {
        "rows": rows,
        "total": total,
        "page": number,
        "pages": max(1, -(-total // size)),
        "first": (number - 1) * size + 1 if rows else 0,
        "last": (number - 1) * size + len(rows),
        "bands": bands,
        "older_model": _older_model(clients, holder.current.version if holder.current else None),
    }
    return page(request, "caseload.html", {"user": user, **view})


def _older_model(clients: list[Client], served: str | None) -> dict[str, int]:
    """Risks on this page from another model version than the one served (recomputed in the background)."""
    versions = [c.current_model_version for c in clients if c.status == "ongoing" and c.current_model_version]
    return {v: versions.count(v) for v in sorted(set(versions)) if served is not None and v != served}


@router.get("/open")
def open_client(request: Request, user: SignedIn, client_id: str = "") -> Response:
    """The "open or add a client" form: to that client's page (a new id opens an empty record)."""
    client_id = client_id.strip()
    if not CLIENT_ID.match(client_id):
        return message(
            request, user, "Not a client id", "Client ids are 1-200 letters, digits or . _ : @ ~ - (no spaces).", 422
        )
    return redirect(request, client_path(client_id))
