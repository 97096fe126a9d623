"""/ui: the clinician dashboard, server-rendered (Jinja2 templates, inline SVG charts).

Pages: sign in and out, the caseload (clients by current risk, band, last session,
flags, a risk sparkline), and a client (scores and risk by session, the latest
risk's factors and next steps, a form that records the next session).

Everything goes through the same service layer as the /v1 API (``serving.service``,
``serving.scoring.score_history``): the dashboard shows exactly what the API serves.
The access log records route templates only; form errors name the field and the
rule, never the value typed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import urllib.parse
from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.features.instruments import Instrument
from dropout_risk.serving import service
from dropout_risk.serving.explain import instrument_label
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.scoring import check_scores
from dropout_risk.serving.settings import ServingSettings
from dropout_risk.serving.store import SESSIONS, find_client, stored_sessions
from dropout_risk.serving.ui import auth, charts

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["percent"] = charts.percent
templates.env.filters["number"] = charts.number

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:@~-]{1,200}$")  # serving.schemas.ClientId
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
FIELD_LABELS = {
    "session_date": "Session date",
    "session_number": "Session number",
    "missed_since_last": "Missed appointments since the last session",
}


# --- plumbing ------------------------------------------------------------------------------


def _base(request: Request) -> str:
    return request.scope.get("root_path", "") + "/ui"


def _redirect(request: Request, path: str) -> RedirectResponse:
    response = RedirectResponse(_base(request) + path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    context = {"base": _base(request), "band_text": BAND_TEXT, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _settings(request: Request) -> ServingSettings:
    return request.app.state.settings


def _user(request: Request) -> auth.SignedIn | None:
    """The signed-in clinic (one indexed read), or None."""
    session = auth.read_session(request)
    if session is None or session.clinic_id is None:
        return None
    with request.app.state.read_sessions() as db, db.begin():
        return auth.signed_in(db, session)


def _to_login(request: Request) -> Response:
    response = _redirect(request, "/login")
    auth.clear_session(request, response)
    return response


def _message(request: Request, user: auth.SignedIn | None, title: str, text: str, status: int) -> HTMLResponse:
    return _page(request, "message.html", {"user": user, "title": title, "text": text}, status)


# --- sign in and out -----------------------------------------------------------------------


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return _redirect(request, "/clients" if _user(request) else "/login")


def _login_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    session = auth.read_session(request)
    if session is None or session.clinic_id is not None:
        session = auth.new_session()
    response = _page(request, "login.html", {"user": None, "csrf": session.csrf, "error": error}, status)
    auth.write_session(request, response, session)
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    if _user(request):
        return _redirect(request, "/clients")
    return _login_page(request, None, 200)


def _check_key(request: Request, key: str) -> tuple[int, int] | None:
    with request.app.state.read_sessions() as db, db.begin():
        return auth.check_key(db, key)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    session = auth.read_session(request)
    if session is None or not auth.csrf_ok(session.csrf, form.get("csrf_token")):
        return _login_page(request, "This sign-in form had expired. Please enter the key again.", 403)
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    if not key:
        return _login_page(request, "Enter your clinic's API key.", 422)
    found = await run_in_threadpool(_check_key, request, key)
    if found is None:
        return _login_page(request, "That key is unknown or has been revoked.", 401)
    response = _redirect(request, "/clients")
    auth.write_session(request, response, auth.new_session(*found))  # a fresh CSRF token
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    session = auth.read_session(request)
    if session is not None and session.clinic_id is not None and not auth.csrf_ok(session.csrf, form.get("csrf_token")):
        return _message(
            request, None, "Not signed out", "The sign-out form had expired: reload the page and sign out again.", 403
        )
    return _to_login(request)


# --- caseload ------------------------------------------------------------------------------


def _trends(db: Session, client_pks: list[int]) -> dict[int, list[tuple[int, float, str, list]]]:
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
    out: dict[int, list[tuple[int, float, str, list]]] = defaultdict(list)
    for pk, number, probability, band, flags in rows:
        if probability is not None:
            out[pk].append((number, float(probability), band or "", flags or []))
    return out


def _caseload_view(request: Request, clinic_id: int, page: int) -> dict[str, Any]:
    settings = _settings(request)
    bands = settings.serving.bands
    size = settings.serving.page_size
    with request.app.state.read_sessions() as db, db.begin():
        clients, total = service.caseload(db, clinic_id, "risk", page, size)
        trends = _trends(db, [c.id for c in clients])
    rows = []
    for c in clients:
        trend = trends.get(c.id, [])
        latest = next((t for t in reversed(trend) if t[0] == c.current_session), trend[-1] if trend else None)
        rows.append(
            {
                "client_id": c.external_id,
                "url": f"{_base(request)}/clients/{urllib.parse.quote(c.external_id, safe='')}",
                "status": c.status,
                "probability": c.current_probability,
                "band": c.current_band,
                "sessions": c.current_session,
                "last_session_date": c.last_session_date,
                "flags": [
                    f.get("text", f.get("flag", "")) for f in (latest[3] if latest else []) if isinstance(f, dict)
                ],
                "sparkline": Markup(
                    charts.sparkline(
                        [t[1] for t in trend],
                        [t[2] for t in trend],
                        moderate=bands.moderate,
                        high=bands.high,
                        prefix=f"spark-{c.id}",
                    )
                ),
            }
        )
    pages = max(1, -(-total // size))
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "first": (page - 1) * size + 1 if rows else 0,
        "last": (page - 1) * size + len(rows),
        "bands": bands,
    }


@router.get("/clients")
def caseload(request: Request, page: str = "1") -> Response:
    user = _user(request)
    if user is None:
        return _to_login(request)
    number = int(page) if page.isdigit() and 0 < int(page) <= 100_000 else 1
    view = _caseload_view(request, user.clinic_id, number)
    return _page(request, "caseload.html", {"user": user, **view})


@router.get("/open")
def open_client(request: Request, client_id: str = "") -> Response:
    """The "open or add a client" form: to that client's page (a new id opens an empty record)."""
    user = _user(request)
    if user is None:
        return _to_login(request)
    client_id = client_id.strip()
    if not CLIENT_ID.match(client_id):
        return _message(
            request, user, "Not a client id", "Client ids are 1-200 letters, digits or . _ : @ ~ - (no spaces).", 422
        )
    return _redirect(request, "/clients/" + urllib.parse.quote(client_id, safe=""))


# --- one client ----------------------------------------------------------------------------


def _form_instruments(loaded: LoadedModel, settings: ServingSettings, recorded: set[str]) -> list[Instrument]:
    """The model's instruments, then any others this client has scores for (registry order)."""
    model_instruments = list(loaded.model.spec.instruments)
    keys = {i.key for i in model_instruments}
    extra = [i for key, i in settings.registry().items() if key in recorded and key not in keys]
    return model_instruments + extra


def _primary(instruments: list[Instrument], role: str, recorded: set[str]) -> Instrument | None:
    return next((i for i in instruments if i.role == role and i.key in recorded), None)


def _charts(
    loaded: LoadedModel, settings: ServingSettings, sessions, timeline: list[dict], instruments: list[Instrument]
) -> dict[str, Markup]:
    recorded = {key for s in sessions for key in s.scores}
    chosen = [
        i
        for i in (_primary(instruments, "outcome", recorded), _primary(instruments, "alliance", recorded))
        if i is not None
    ]
    numbers = [s.session_number for s in sessions]
    next_session = numbers[-1] + 1
    out: dict[str, Markup] = {}
    if chosen:
        if len({(i.min, i.max) for i in chosen}) > 2:  # pragma: no cover - two instruments at most
            chosen = chosen[:1]
        series = [
            charts.ScoreSeries.of(i, instrument_label(i), [s.scores.get(i.key) for s in sessions]) for i in chosen
        ]
        band = None
        outcome = next((i for i in chosen if i.role == "outcome"), None)
        if outcome is not None:
            first = next(s for s in sessions if s.scores.get(outcome.key) is not None)
            spec = loaded.model.spec
            band = charts.expected_band(
                outcome,
                instrument_label(outcome),
                loaded.model.trajectories,
                spec.off_track_z,
                first.session_number,
                first.scores[outcome.key],
                next_session,
            )
        out["scores"] = Markup(charts.scores_chart(numbers, series, band, last_session=next_session))
    bands = settings.serving.bands
    out["risk"] = Markup(
        charts.risk_chart(
            [t["session_number"] for t in timeline],
            [t["probability"] for t in timeline],
            [t["band"] for t in timeline],
            moderate=bands.moderate,
            high=bands.high,
            last_session=next_session,
        )
    )
    return out


def _client_view(
    request: Request,
    user: auth.SignedIn,
    loaded: LoadedModel,
    client_id: str,
    form: dict[str, str] | None = None,
    errors: list[dict] | None = None,
    recorded: int | None = None,
) -> dict[str, Any]:
    settings = _settings(request)
    with request.app.state.read_sessions() as db, db.begin():
        client = find_client(db, user.clinic_id, client_id)
        if client is None:
            sessions, risk, timeline, status = [], None, [], "ongoing"
        else:
            client, risk, timeline = service.client_risk(db, user.clinic_id, client_id, loaded, settings.serving.bands)
            sessions = stored_sessions(db, client.id)
            status = client.status
    recorded_keys = {key for s in sessions for key in s.scores}
    instruments = _form_instruments(loaded, settings, recorded_keys)
    labels = {i.key: instrument_label(i) for i in instruments}
    table_instruments = [i for i in instruments if i.key in recorded_keys]
    next_number = len(sessions) + 1
    flash = None
    if recorded is not None and 1 <= recorded <= len(timeline):
        now = timeline[recorded - 1]
        before = timeline[recorded - 2] if recorded >= 2 else None
        flash = {"session": recorded, "now": now, "before": before}
    values = form or {}
    if not form:
        values = {"session_date": _today(), "missed_since_last": ""}
    rows = [{"session": s, "risk": t} for s, t in zip(sessions, timeline, strict=True)]
    return {
        "user": user,
        "client_id": client_id,
        "client_url": f"{_base(request)}/clients/{urllib.parse.quote(client_id, safe='')}",
        "is_new": client is None,
        "status": status,
        "risk": risk,
        "timeline": timeline,
        "rows": rows,
        "charts": _charts(loaded, settings, sessions, timeline, instruments) if sessions else {},
        "instruments": instruments,
        "table_instruments": table_instruments,
        "labels": labels,
        "missing": [labels.get(key, key) for key in (risk or {}).get("missing_inputs", [])],
        "next_number": next_number,
        "min_date": sessions[-1].session_date.isoformat() if sessions else None,
        "values": values,
        "errors": errors or [],
        "error_fields": {e["field"] for e in errors or []},
        "flash": flash,
        "csrf": user.csrf,
        "bands": settings.serving.bands,
        "model_version": loaded.version,
    }


def _today() -> str:
    return dt.date.today().isoformat()


def _loaded(request: Request) -> LoadedModel | None:
    return request.app.state.holder.current


@router.get("/clients/{client_id}")
def client_page(request: Request, client_id: str, recorded: str | None = None) -> Response:
    user = _user(request)
    if user is None:
        return _to_login(request)
    if not CLIENT_ID.match(client_id):
        return _message(request, user, "No such client", "There is no client with that id.", 404)
    loaded = _loaded(request)
    if loaded is None:
        return _message(request, user, "Not ready", "The risk model has not loaded yet. Try again in a minute.", 503)
    number = int(recorded) if recorded and recorded.isdigit() and len(recorded) < 6 else None
    return _page(request, "client.html", _client_view(request, user, loaded, client_id, recorded=number))


def _field_id(loc: tuple) -> str:
    loc = tuple(p for p in loc if p != "body")
    if len(loc) >= 2 and loc[0] == "scores":
        return f"score_{loc[1]}"
    return str(loc[0]) if loc else "form"


def _error(field: str, labels: dict[str, str], msg: str) -> dict[str, str]:
    if field.startswith("score_"):
        label = labels.get(field.removeprefix("score_"), field.removeprefix("score_"))
    else:
        label = FIELD_LABELS.get(field, "This session")
    return {"field": field, "label": label, "msg": msg}


def _payload(form: dict[str, str]) -> dict[str, Any]:
    scores = {
        name.removeprefix("score_"): value.replace(",", ".")  # 17,5 reads as 17.5
        for name, value in form.items()
        if name.startswith("score_") and value
    }
    payload: dict[str, Any] = {
        "session_number": form.get("session_number", ""),
        "scores": scores,
        "missed_since_last": form.get("missed_since_last") or None,
    }
    if form.get("session_date"):
        payload["session_date"] = form["session_date"]
    return payload


def _record(
    request: Request, clinic_id: int, client_id: str, payload: SessionIn, loaded: LoadedModel
) -> service.Recorded:
    settings = _settings(request)
    with request.app.state.sessions() as db:
        recorded = service.record_session(
            db, clinic_id, client_id, payload, loaded, settings.registry(), settings.serving.bands
        )
        db.commit()
    return recorded


@router.post("/clients/{client_id}/sessions")
async def record_session(request: Request, client_id: str) -> Response:
    user = await run_in_threadpool(_user, request)
    if user is None:
        return _to_login(request)
    raw = await request.form()
    if not auth.csrf_ok(user.csrf, raw.get("csrf_token")):
        return _message(
            request, user, "Not recorded", "The form had expired: open the client again and re-enter the session.", 403
        )
    if not CLIENT_ID.match(client_id):
        return _message(request, user, "No such client", "There is no client with that id.", 404)
    loaded = _loaded(request)
    if loaded is None:
        return _message(request, user, "Not ready", "The risk model has not loaded yet. Try again in a minute.", 503)
    form = {name: value.strip() for name, value in raw.items() if isinstance(value, str) and name != "csrf_token"}
    labels = {i.key: instrument_label(i) for i in _settings(request).registry().values()}
    errors: list[dict] = []
    try:
        payload = SessionIn.model_validate(_payload(form))
        recorded = await run_in_threadpool(_record, request, user.clinic_id, client_id, payload, loaded)
    except ValidationError as exc:
        errors = [_error(_field_id(e["loc"]), labels, e["msg"]) for e in exc.errors(include_input=False)]
        # The scores that did parse are range-checked too, so every problem is listed at once.
        numbers = {}
        for key, value in _payload(form)["scores"].items():
            with contextlib.suppress(ValueError):
                numbers[key] = float(value)
        known = {e["field"] for e in errors}
        errors += [
            _error(_field_id(p.loc), labels, p.msg)
            for p in check_scores(numbers, _settings(request).registry(), ())
            if _field_id(p.loc) not in known
        ]
    except service.Invalid as exc:
        errors = [_error(_field_id(p.loc), labels, p.msg) for p in exc.problems]
    except service.Conflict:
        errors = [
            _error(
                "session_number",
                labels,
                "a different session is already stored under this number; reload the page to see it",
            )
        ]
    if errors:
        view = await run_in_threadpool(_client_view, request, user, loaded, client_id, form, errors)
        return _page(request, "client.html", view, 422)
    request.app.state.metrics.observe_risk(recorded.risk["probability"], recorded.risk["band"])
    path = f"/clients/{urllib.parse.quote(client_id, safe='')}?recorded={payload.session_number}"
    return _redirect(request, path)
