"""Record an input's sessions through the service's one rule set (``service.ClientWriter``, which
``POST /v1/clients/{id}/sessions`` uses too), entry by entry.

A session is checked whole before anything of it is written, so a bad one leaves the others stored
(``batch``, ``collection``); for a ``transaction`` the caller rolls everything back when any entry failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.orm import Session

from dropout_risk.serving import service
from dropout_risk.serving.checks import Problem
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.fhir.drafts import Draft, client_drafts, number_drafts
from dropout_risk.serving.fhir.parse import Entry, Incoming, Issue
from dropout_risk.serving.fhir.readings import (
    Reading,
    Visit,
    appointment_visit,
    encounter_dates,
    observation_reading,
    questionnaire_reading,
)
from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.scoring import ScoringContext

CONTEXT_TYPES = frozenset({"Patient", "Encounter"})  # read for references, nothing stored from them
# Where a session's rule is broken, as an element of the resources that gave the session.
SESSION_ELEMENTS = {"session_date": "effective[x]", "session_number": "encounter", "missed_since_last": "Appointment"}


@dataclass
class Imported:
    """Per entry: "201 Created" (a session stored), "200 OK" (already stored, or read only), or failed (issues)."""

    incoming: Incoming
    statuses: dict[int, str] = field(default_factory=dict)
    created: int = 0
    unchanged: int = 0

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.incoming.entries if e.failed]


def import_entries(
    db: Session,
    clinic_id: int,
    incoming: Incoming,
    codes: CodeMap,
    scoring: ScoringContext,
    band_rise: float | None = None,
) -> Imported:
    """Record the input's sessions; with ``band_rise`` their alerts go to the webhook outbox, as for /v1."""
    readings, visits = read_entries(incoming.entries, codes)
    result = Imported(incoming)
    for client_id, drafts in client_drafts(readings).items():
        writer = _ClientArgs(db, clinic_id, client_id, scoring, band_rise)
        _record_client(writer, drafts, visits.get(client_id, []), result)
    for entry in incoming.entries:
        if not entry.failed:
            result.statuses.setdefault(entry.index, "200 OK")
    return result


def read_entries(entries: Sequence[Entry], codes: CodeMap) -> tuple[list[Reading], dict[str, list[Visit]]]:
    """Each entry's score (a Reading) or appointment (a Visit, by client); what is not used is noted on it."""
    encounters = encounter_dates(list(entries))
    readings: list[Reading] = []
    visits: dict[str, list[Visit]] = defaultdict(list)
    for entry in entries:
        if entry.failed:
            continue
        kind = entry.type_name
        if kind == "Observation":
            reading = observation_reading(entry, codes, encounters)
        elif kind == "QuestionnaireResponse":
            reading = questionnaire_reading(entry, codes, encounters)
        else:
            reading = None
            if kind == "Appointment":
                visit = appointment_visit(entry)
                if visit is not None:
                    visits[visit.client_id].append(visit)
            elif kind not in CONTEXT_TYPES:
                entry.issues.append(Issue("warning", "not-supported", "resourceType", f"not imported: {kind}"))
        if reading is not None:
            readings.append(reading)
    return readings, visits


@dataclass(frozen=True)
class _ClientArgs:
    db: Session
    clinic_id: int
    client_id: str
    scoring: ScoringContext
    band_rise: float | None


def _record_client(args: _ClientArgs, drafts: list[Draft], visits: list[Visit], result: Imported) -> None:
    """The client's sessions through one ``service.ClientWriter``; a new client with nothing stored is not kept."""
    savepoint = args.db.begin_nested()
    try:
        writer = service.ClientWriter(args.db, args.clinic_id, args.client_id, args.scoring, args.band_rise)
        numbers = number_drafts(list(writer.sessions), drafts, visits)
        stored = len(writer.sessions)
        failed_before = False
        for draft, number in zip(drafts, numbers, strict=True):
            if failed_before:
                draft.fail("processing", "", "not stored: an earlier new session of this client in this input failed")
                continue
            if not any(e.failed for e in draft.entries):
                _record(writer, draft, number, result)
            # A new session that failed leaves a gap: the later ones cannot be numbered. A stored one that
            # conflicts changes nothing, and the sessions after it still follow the stored ones.
            failed_before = number > stored and any(e.failed for e in draft.entries)
        writer.finish()
    except BaseException:
        savepoint.rollback()
        raise
    if writer.sessions:
        savepoint.commit()
    else:
        savepoint.rollback()


def _record(writer: service.ClientWriter, draft: Draft, number: int, result: Imported) -> None:
    """One session through the writer: every check passes before anything of it is written."""
    try:
        payload = SessionIn(
            session_number=number, session_date=draft.session_date, scores=draft.scores, missed_since_last=draft.missed
        )
    except ValidationError as exc:
        _fail(draft, [Problem(tuple(e["loc"]), e["msg"]) for e in exc.errors()])
        return
    try:
        recorded = writer.record(payload, draft.basis or None)
    except service.Invalid as exc:
        _fail(draft, exc.problems)
        return
    except service.Conflict:
        draft.fail("conflict", "", "a different session is already stored for this client on this date")
        return
    status = "201 Created" if recorded.created else "200 OK"
    for entry in draft.entries:
        result.statuses[entry.index] = status
    result.created += recorded.created
    result.unchanged += not recorded.created


def _fail(draft: Draft, problems: Sequence[Problem]) -> None:
    """A broken rule on the entry and element it came from: a score's on its reading, a session's on every entry."""
    for problem in problems:
        instrument = problem.loc[-1] if len(problem.loc) > 1 and problem.loc[-2] == "scores" else None
        readings = [r for r in draft.readings if r.instrument == instrument]
        if readings:
            for reading in readings:
                reading.entry.fail("value", reading.element, problem.msg)
            continue
        name = next((str(p) for p in problem.loc if str(p) in SESSION_ELEMENTS), "")
        draft.fail("invalid", SESSION_ELEMENTS.get(name, ""), problem.msg)
