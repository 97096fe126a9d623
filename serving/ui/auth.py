"""The dashboard's sign-in: a clinic's API key, exchanged once for a signed session cookie.

- The key is posted once, in a form body (never a URL), and checked with
  ``serving.keys.clinic_for_key``. It is not kept: the cookie holds the id of
  the key's row, the clinic id, a random session id and a CSRF token, signed
  (HMAC-SHA1 via itsdangerous) and time-stamped.
- Signing in stores the session id's SHA-256 in ``dashboard_sessions``;
  signing out deletes that row, so a copy of the cookie taken before sign-out
  opens nothing afterwards (the signature alone would stay valid 8 hours).
- The cookie is HttpOnly, SameSite=Strict, scoped to ``/ui``, Secure when the
  request came over HTTPS, and expires after ``SESSION_SECONDS`` (8 hours).
- Every request re-reads the key's row and the session's row (one indexed
  read): revoking the key (``dropout-risk keys revoke``) or signing out ends
  the session at once.
- Forms carry the session's CSRF token; a POST without the matching token is
  refused. Signing in rotates the token (no session fixation); the sign-in form
  itself is protected by the token of the anonymous session the login page sets.

The signing secret is ``DROPOUT_RISK_UI_SECRET`` when set (give every worker
process the same one), otherwise random per process: then a restart signs
everyone out, which is safe.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from dropout_risk.serving.keys import clinic_for_key, digest
from dropout_risk.serving.tables import ApiKey, Clinic, DashboardSession

COOKIE = "drk_ui"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600
SECRET_ENV = "DROPOUT_RISK_UI_SECRET"
_SALT = "dropout-risk-ui-session"
_PROCESS_SECRET = secrets.token_bytes(32)


@dataclass(frozen=True)
class UiSession:
    """What the cookie says; ``clinic_id`` is None before sign-in."""

    csrf: str
    clinic_id: int | None = None
    key_id: int | None = None
    sid: str | None = None  # names the server-side row while signed in


@dataclass(frozen=True)
class SignedInClinic:
    """A checked session: the key is still active and belongs to this clinic."""

    clinic_id: int
    clinic_name: str
    csrf: str


def _serializer() -> URLSafeTimedSerializer:
    secret = os.environ.get(SECRET_ENV) or _PROCESS_SECRET
    return URLSafeTimedSerializer(secret, salt=_SALT)


def read_session(request: Request) -> UiSession | None:
    """The cookie's session if its signature is valid and it has not expired, else None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    clinic_id, key_id, sid = data.get("clinic"), data.get("key"), data.get("sid")
    if not (isinstance(clinic_id, int) and isinstance(key_id, int) and isinstance(sid, str)):
        clinic_id = key_id = sid = None
    return UiSession(csrf=data["csrf"], clinic_id=clinic_id, key_id=key_id, sid=sid)


def new_session() -> UiSession:
    """An anonymous session: a CSRF token for the sign-in form."""
    return UiSession(csrf=secrets.token_urlsafe(32))


def start_session(db: Session, clinic_id: int, key_id: int) -> UiSession:
    """A signed-in session with a fresh id and CSRF token, recorded server-side (the caller commits).

    Rows past their expiry go at the same time, so the table holds only live sessions.
    """
    now = int(time.time())
    db.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    sid = secrets.token_urlsafe(32)
    db.add(DashboardSession(id_hash=digest(sid), key_id=key_id, expires_at=now + SESSION_SECONDS))
    return UiSession(csrf=secrets.token_urlsafe(32), clinic_id=clinic_id, key_id=key_id, sid=sid)


def end_session(db: Session, session: UiSession | None) -> None:
    """Forget the session server-side (the caller commits): its cookie, and any copy of it, opens nothing more."""
    if session is not None and session.sid is not None:
        db.execute(delete(DashboardSession).where(DashboardSession.id_hash == digest(session.sid)))


def write_session(request: Request, response: Response, session: UiSession) -> None:
    payload: dict[str, object] = {"csrf": session.csrf}
    if session.clinic_id is not None:
        payload.update(clinic=session.clinic_id, key=session.key_id, sid=session.sid)
    response.set_cookie(
        COOKIE,
        _serializer().dumps(payload),
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def check_key(db: Session, key: str) -> tuple[int, int] | None:
    """(clinic id, key row id) for an active key, else None (unknown and revoked look alike)."""
    clinic_id = clinic_for_key(db, key)
    if clinic_id is None:
        return None
    key_id = db.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest(key)))
    return None if key_id is None else (clinic_id, key_id)


def signed_in(db: Session, session: UiSession | None) -> SignedInClinic | None:
    """The session's clinic if it was not signed out and its key is still active (one indexed read), else None."""
    if session is None or session.clinic_id is None or session.key_id is None or session.sid is None:
        return None
    row = db.execute(
        select(ApiKey.clinic_id, Clinic.name)
        .join(Clinic, Clinic.id == ApiKey.clinic_id)
        .join(DashboardSession, DashboardSession.key_id == ApiKey.id)
        .where(
            ApiKey.id == session.key_id,
            ApiKey.revoked_at.is_(None),
            DashboardSession.id_hash == digest(session.sid),
            DashboardSession.expires_at > int(time.time()),
        )
    ).first()
    if row is None or row.clinic_id != session.clinic_id:
        return None
    return SignedInClinic(clinic_id=row.clinic_id, clinic_name=row.name, csrf=session.csrf)


def csrf_ok(expected: str | None, given: object) -> bool:
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
