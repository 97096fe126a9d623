"""/ui, /ui/login and /ui/logout: a clinic's key exchanged once for a signed session cookie (see ``auth``)."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from dropout_risk.serving.deps import Db
from dropout_risk.serving.ui import auth
from dropout_risk.serving.ui.deps import MaybeSignedIn
from dropout_risk.serving.ui.pages import dashboard_router, message, page, redirect, to_login

router = dashboard_router()


@router.get("")
@router.get("/")
def home(request: Request, user: MaybeSignedIn) -> Response:
    return redirect(request, "/clients" if user else "/login")


def _login_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    session = auth.read_session(request)
    if session is None or session.clinic_id is not None:
        session = auth.new_session()
    response = page(request, "login.html", {"user": None, "csrf": session.csrf, "error": error}, status)
    auth.write_session(request, response, session)
    return response


@router.get("/login")
def login_form(request: Request, user: MaybeSignedIn) -> Response:
    if user:
        return redirect(request, "/clients")
    return _login_page(request, None, 200)


@router.post("/login")
async def login(request: Request, db: Db) -> Response:
    form = await request.form()
    session = auth.read_session(request)
    if session is None or not auth.csrf_ok(session.csrf, form.get("csrf_token")):
        return _login_page(request, "This sign-in form had expired. Please enter the key again.", 403)
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    if not key:
        return _login_page(request, "Enter your clinic's API key.", 422)
    found = await run_in_threadpool(auth.check_key, db, key)
    if found is None:
        return _login_page(request, "That key is unknown or has been revoked.", 401)
    started = await run_in_threadpool(_start, db, *found)
    response = redirect(request, "/clients")
    auth.write_session(request, response, started)  # a fresh session id and CSRF token (no fixation)
    return response


def _start(db: Session, clinic_id: int, key_id: int) -> auth.UiSession:
    session = auth.start_session(db, clinic_id, key_id)
    db.commit()
    return session


def _end(db: Session, session: auth.UiSession | None) -> None:
    auth.end_session(db, session)
    db.commit()


@router.post("/logout")
async def logout(request: Request, db: Db) -> Response:
    form = await request.form()
    session = auth.read_session(request)
    if session is not None and session.clinic_id is not None and not auth.csrf_ok(session.csrf, form.get("csrf_token")):
        return message(
            request, None, "Not signed out", "The sign-out form had expired: reload the page and sign out again.", 403
        )
    await run_in_threadpool(_end, db, session)  # a copy of the cookie is worthless from here on
    return to_login(request)
