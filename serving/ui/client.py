"""/ui/clients/{client_id}: a client's scores and risk by session, what changed since the last session, the latest
risk explained, the next session's form.

Everything goes through the same service layer as the /v1 API (``serving.service``):
the page shows exactly what the API serves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session

from dropout_risk.features.instruments import Instrument
from dropout_risk.serving import service
from dropout_risk.serving.deps import Db, MaybeScoring, ReadDb, RiskMetrics, Settings
from dropout_risk.serving.explain import instrument_label
from dropout_risk.serving.risk import HistoryItem, Risk
from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.scoring import ScoringContext
from dropout_risk.serving.store import StoredSession
from dropout_risk.serving.ui import auth, charts
from dropout_risk.serving.ui.caseload import CLIENT_ID
from dropout_risk.serving.ui.deps import SignedIn
from dropout_risk.serving.ui.form import Errors, FormError, payload
from dropout_risk.serving.ui.pages import client_path, client_url, dashboard_router, message, page, redirect
from dropout_risk.serving.values import query_int

router = dashboard_router()
NOT_READY = ("Not ready", "The risk model has not loaded yet. Try again in a minute.")
NO_SUCH_CLIENT = ("No such client", "There is no client with that id.")
_ROLES = ("outcome", "alliance")  # the score chart's lines: the first instrument of each the client has scores for


def _form_instruments(scoring: ScoringContext, recorded: set[str]) -> list[Instrument]:
    """The model's instruments, then any others this client has scores for (registry order)."""
    model_instruments = list(scoring.spec.instruments)
    keys = {i.key for i in model_instruments}
    extra = [i for key, i in scoring.registry.items() if key in recorded and key not in keys]
    return model_instruments + extra


def _scores_chart(
    scoring: ScoringContext, sessions: Sequence[StoredSession], instruments: list[Instrument], last: int
) -> Markup | None:
    """The primary outcome and alliance scores, with the outcome's expected band; None if neither was given."""
    recorded = {key for s in sessions for key in s.scores}
    primary = (next((i for i in instruments if i.role == role and i.key in recorded), None) for role in _ROLES)
    chosen = [i for i in primary if i is not None]
    if not chosen:
        return None
    series = [charts.ScoreSeries.of(i, instrument_label(i), [s.scores.get(i.key) for s in sessions]) for i in chosen]
    band = None
    outcome = next((i for i in chosen if i.role == "outcome"), None)
    if outcome is not None:
        first = next(s for s in sessions if s.scores.get(outcome.key) is not None)
        band = charts.expected_band(
            outcome,
            instrument_label(outcome),
            scoring.trajectories,
            scoring.spec.off_track_z,
            first.session_number,
            first.scores[outcome.key],
            last,
        )
    numbers = [s.session_number for s in sessions]
    return Markup(charts.scores_chart(numbers, series, band, last_session=last))


def _charts(
    scoring: ScoringContext,
    sessions: Sequence[StoredSession],
    timeline: list[HistoryItem],
    instruments: list[Instrument],
) -> dict[str, Markup]:
    next_session = sessions[-1].session_number + 1  # the axis leaves room for the session about to be recorded
    out: dict[str, Markup] = {}
    scores = _scores_chart(scoring, sessions, instruments, next_session)
    if scores is not None:
        out["scores"] = scores
    out["risk"] = Markup(
        charts.risk_chart(
            [t.session_number for t in timeline],
            [t.probability for t in timeline],
            [t.band for t in timeline],
            moderate=scoring.bands.moderate,
            high=scoring.bands.high,
            last_session=next_session,
        )
    )
    return out


@dataclass(frozen=True)
class ChangeStep:
    """One step of ``Risk.changes`` as the page shows it: its words and its signed points."""

    concept: str
    text: str
    points: float  # as the API gives it
    shown: str  # "+8.1", "-4.0", "0.0"

    @property
    def way(self) -> str:
        """Up, down or none, as shown: a step that rounds to 0.0 points moved nothing visible."""
        return {"+": "up", "-": "down"}.get(self.shown[0], "none")


@dataclass(frozen=True)
class ChangesView:
    """What moved the latest risk since the previous session's: the two risks and the steps between them."""

    before: HistoryItem
    now: HistoryItem
    steps: list[ChangeStep]

    @property
    def points(self) -> float:
        """The whole move in percentage points (the steps sum to it)."""
        return 100 * (self.now.probability - self.before.probability)


def _changes(risk: Risk | None, timeline: list[HistoryItem]) -> ChangesView | None:
    """None at session 1 and past the model's last landmark (the risk carries no changes there)."""
    if risk is None or not risk.changes or len(timeline) < 2:
        return None
    steps = [ChangeStep(c.concept, c.text, c.points, charts.points(c.points)) for c in risk.changes]
    return ChangesView(before=timeline[-2], now=timeline[-1], steps=steps)


def _client_view(
    request: Request,
    db: Session,
    user: auth.SignedInClinic,
    scoring: ScoringContext,
    client_id: str,
    form: dict[str, str] | None = None,
    errors: list[FormError] | None = None,
    recorded: int | None = None,
) -> dict[str, Any]:
    try:
        view = service.client_risk(db, user.clinic_id, client_id, scoring)
    except service.NotFound:
        view = None
    sessions, timeline = (view.sessions, view.history) if view else ([], [])
    risk = view.risk if view else None
    recorded_keys = {key for s in sessions for key in s.scores}
    instruments = _form_instruments(scoring, recorded_keys)
    labels = {i.key: instrument_label(i) for i in instruments}
    flash = None
    if recorded is not None and 1 <= recorded <= len(timeline):
        before = timeline[recorded - 2] if recorded >= 2 else None
        flash = {"session": recorded, "now": timeline[recorded - 1], "before": before}
    return {
        "user": user,
        "client_id": client_id,
        "client_url": client_url(request, client_id),
        "is_new": view is None,
        "status": view.client.status if view else "ongoing",
        "risk": risk,
        "changes": _changes(risk, timeline),
        "timeline": timeline,
        "rows": [{"session": s, "risk": t} for s, t in zip(sessions, timeline, strict=True)],
        "charts": _charts(scoring, sessions, timeline, instruments) if sessions else {},
        "instruments": instruments,
        "table_instruments": [i for i in instruments if i.key in recorded_keys],
        "labels": labels,
        "missing": [labels.get(key, key) for key in (risk.missing_inputs if risk else [])],
        "next_number": len(sessions) + 1,
        "min_date": sessions[-1].session_date.isoformat() if sessions else None,
        "values": form or {"session_date": dt.date.today().isoformat(), "missed_since_last": ""},
        "errors": errors or [],
        "error_fields": {e.field for e in errors or []},
        "flash": flash,
        "csrf": user.csrf,
        "bands": scoring.bands,
        "model_version": scoring.version,
    }


@router.get("/clients/{client_id}")
def client_page(
    request: Request, client_id: str, user: SignedIn, db: ReadDb, scoring: MaybeScoring, recorded: str | None = None
) -> Response:
    if not CLIENT_ID.match(client_id):
        return message(request, user, *NO_SUCH_CLIENT, 404)
    if scoring is None:
        return message(request, user, *NOT_READY, 503)
    number = query_int(recorded, max_digits=5)
    return page(request, "client.html", _client_view(request, db, user, scoring, client_id, recorded=number))


def _record(
    db: Session, clinic_id: int, client_id: str, session: SessionIn, scoring: ScoringContext, band_rise: float
) -> service.Recorded:
    try:
        recorded = service.record_session(db, clinic_id, client_id, session, scoring, band_rise)
        db.commit()
    except Exception:
        db.rollback()  # now, not when the request ends: the page with the errors is rendered first
        raise
    return recorded


@router.post("/clients/{client_id}/sessions")
async def record_session(
    request: Request,
    client_id: str,
    user: SignedIn,
    db: Db,
    read_db: ReadDb,
    scoring: MaybeScoring,
    metrics: RiskMetrics,
    settings: Settings,
) -> Response:
    raw = await request.form()
    if not auth.csrf_ok(user.csrf, raw.get("csrf_token")):
        text = "The form had expired: open the client again and re-enter the session."
        return message(request, user, "Not recorded", text, 403)
    if not CLIENT_ID.match(client_id):
        return message(request, user, *NO_SUCH_CLIENT, 404)
    if scoring is None:
        return message(request, user, *NOT_READY, 503)
    form = {name: value.strip() for name, value in raw.items() if isinstance(value, str) and name != "csrf_token"}
    errors = Errors(scoring.registry)
    try:
        session = SessionIn.model_validate(payload(form))
        band_rise = settings.webhooks.band_rise
        recorded = await run_in_threadpool(_record, db, user.clinic_id, client_id, session, scoring, band_rise)
    except ValidationError as exc:
        problems = errors.of_validation(exc, form)
    except service.Invalid as exc:
        problems = errors.of_problems(exc.problems)
    except service.Conflict:
        stored = "a different session is already stored under this number; reload the page to see it"
        problems = [errors.error(("session_number",), stored)]
    else:
        metrics.observe_risk(recorded.risk.probability, recorded.risk.band)
        return redirect(request, f"{client_path(client_id)}?recorded={session.session_number}")
    view = await run_in_threadpool(_client_view, request, read_db, user, scoring, client_id, form, problems)
    return page(request, "client.html", view, 422)
