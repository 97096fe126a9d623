"""The client's risk for a card: from the stored sessions, plus the prefetched Observations.

Prefetched Observations are read as ``POST /fhir/r4`` reads them. They are scored with the stored
sessions and not stored, unless the caller's clinic enables storing them
(``store_observations``): then they are recorded as a ``collection`` is, and the card shows the
stored risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dropout_risk.serving import service
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.fhir.drafts import client_drafts, number_drafts
from dropout_risk.serving.fhir.importer import import_entries, read_entries
from dropout_risk.serving.fhir.parse import Entry, Incoming, read_resource
from dropout_risk.serving.fhir.readings import patient_id
from dropout_risk.serving.risk import Risk
from dropout_risk.serving.scoring import HistoryRow, ScoringContext
from dropout_risk.serving.store import StoredSession, find_client, stored_sessions


@dataclass(frozen=True)
class Assessment:
    risk: Risk
    previous: float | None  # the risk after the session before, for "up from 22%"


def prefetched_entries(bundle: Any, client_id: str) -> list[Entry]:
    """The prefetch Bundle's resources about this client (others are left out), each read as an R4B model."""
    raw = bundle.get("entry") if isinstance(bundle, dict) else None
    entries = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        entry = Entry(index, f"prefetch.entry[{index}]", None)
        read_resource(entry, item.get("resource") if isinstance(item, dict) else None)
        subject = getattr(entry.resource, "subject", None)
        if not entry.failed and patient_id(subject) == client_id:
            entries.append(entry)
    return entries


def assess(
    db: Session,
    clinic_id: int,
    client_id: str,
    prefetched: list[Entry],
    store: bool,
    codes: CodeMap,
    scoring: ScoringContext,
    band_rise: float | None = None,
) -> Assessment | None:
    """The risk after the client's latest session (None without any), stored or prefetched."""
    if store and prefetched:
        import_entries(db, clinic_id, Incoming("collection", prefetched), codes, scoring, band_rise)
        db.commit()
    sessions, covariates = _stored(db, clinic_id, client_id)
    history = [s.history_row() for s in sessions]
    if prefetched and not store:
        history += _prefetched_rows(sessions, prefetched, codes)
    if not history:
        return None
    try:
        scored = service.score(history, covariates, scoring)
    except service.Invalid:  # prefetched sessions that break the rules: the stored ones alone
        history = [s.history_row() for s in sessions]
        if not history:
            return None
        scored = service.score(history, covariates, scoring)
    previous = scored.history[-2].probability if len(scored.history) > 1 else None
    return Assessment(scored.risk, previous)


def _stored(db: Session, clinic_id: int, client_id: str) -> tuple[list[StoredSession], dict[str, object]]:
    client = find_client(db, clinic_id, client_id)
    if client is None:
        return [], {}
    return stored_sessions(db, client.id), dict(client.covariates or {})


def _prefetched_rows(stored: list[StoredSession], prefetched: list[Entry], codes: CodeMap) -> list[HistoryRow]:
    """The prefetched sessions the stored ones do not hold yet, numbered after them as an import would."""
    readings, visits = read_entries(prefetched, codes)
    rows = []
    for client_id, drafts in client_drafts(readings).items():
        for draft, number in zip(drafts, number_drafts(stored, drafts, visits.get(client_id, [])), strict=True):
            if number > len(stored) and not any(e.failed for e in draft.entries):
                rows.append(HistoryRow(number, draft.session_date, draft.scores, draft.missed))
    return rows
