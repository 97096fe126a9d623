"""The dashboard's dependencies: who is signed in.

A route that takes ``SignedIn`` runs only for a valid session whose key is still
active; any other request gets the redirect to the sign-in page (``NotSignedIn``,
answered by ``not_signed_in``, which ``serving.ui.install`` registers).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from dropout_risk.serving.deps import ReadDb
from dropout_risk.serving.ui import auth
from dropout_risk.serving.ui.pages import to_login


class NotSignedIn(Exception):
    pass


def current_user(request: Request, db: ReadDb) -> auth.SignedInClinic | None:
    """The signed-in clinic (one indexed read), or None."""
    session = auth.read_session(request)
    if session is None or session.clinic_id is None:
        return None
    return auth.signed_in(db, session)


MaybeSignedIn = Annotated[auth.SignedInClinic | None, Depends(current_user)]


async def require_user(user: MaybeSignedIn) -> auth.SignedInClinic:
    if user is None:
        raise NotSignedIn
    return user


SignedIn = Annotated[auth.SignedInClinic, Depends(require_user)]


async def not_signed_in(request: Request, _exc: Exception) -> Response:
    return to_login(request)
