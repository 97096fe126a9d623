"""Readings and appointments grouped into one client's sessions, in date order, and numbered after what is stored.

The session number is the order of the client's encounters: a session already stored on the same date
with the same scores is that session again (a re-sent Bundle changes nothing); one on the same date with
other scores is a conflict; any other is numbered after the stored ones, and the service's rules
(consecutive numbers, dates never going back) then apply as for ``POST /v1/clients/{id}/sessions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dropout_risk.serving.fhir.parse import Entry
from dropout_risk.serving.fhir.readings import Reading, Visit
from dropout_risk.serving.store import StoredSession


@dataclass
class Draft:
    """One session of one client as the input gives it."""

    client_id: str
    key: str
    session_date: dt.date
    readings: list[Reading] = field(default_factory=list)
    missed: int | None = None

    @property
    def scores(self) -> dict[str, float]:
        return {r.instrument: r.score for r in self.readings}

    @property
    def entries(self) -> list[Entry]:
        return list({id(r.entry): r.entry for r in self.readings}.values())

    @property
    def first_index(self) -> int:
        return min(r.entry.index for r in self.readings)

    @property
    def basis(self) -> list[str]:
        """References ("Observation/ID", "QuestionnaireResponse/ID") of its resources that carry an id."""
        resources = [e.resource for e in self.entries]
        return [f"{r.get_resource_type()}/{r.id}" for r in resources if r is not None and r.id]

    def fail(self, code: str, element: str, rule: str) -> None:
        for entry in self.entries:
            entry.fail(code, element, rule)


def client_drafts(readings: Iterable[Reading]) -> dict[str, list[Draft]]:
    """Client -> its sessions in date order (ties: order in the input); two scores of one instrument fail both."""
    sessions: dict[tuple[str, str], Draft] = {}
    for reading in readings:
        draft = sessions.setdefault(
            (reading.client_id, reading.session_key),
            Draft(reading.client_id, reading.session_key, reading.session_date),
        )
        twin = next((r for r in draft.readings if r.instrument == reading.instrument), None)
        if twin is not None and twin.score != reading.score:
            for r in (twin, reading):
                r.entry.fail(
                    "duplicate", r.element, "another entry gives this instrument another score at this session"
                )
        draft.session_date = min(draft.session_date, reading.session_date)
        if twin is None:
            draft.readings.append(reading)
    by_client: dict[str, list[Draft]] = {}
    for draft in sorted(sessions.values(), key=lambda d: (d.session_date, d.first_index)):
        by_client.setdefault(draft.client_id, []).append(draft)
    return by_client


def number_drafts(stored: Sequence[StoredSession], drafts: Sequence[Draft], visits: Sequence[Visit]) -> list[int]:
    """Each draft's session number, and its ``missed`` set from the client's no-shows (None without appointments)."""
    unmatched = list(stored)
    dates = {s.session_number: s.session_date for s in stored}
    numbers = []
    next_number = len(stored) + 1
    for draft in drafts:
        same_day = [s for s in unmatched if s.session_date == draft.session_date]
        number = next_number
        if same_day:
            number = same_day[0].session_number
        previous = dates.get(number - 1)
        draft.missed = _missed(visits, previous, draft.session_date) if visits else None
        exact = [s for s in same_day if s.scores == draft.scores and s.missed_since_last == draft.missed]
        if exact:
            number = exact[0].session_number
        if same_day:
            unmatched.remove(exact[0] if exact else same_day[0])
        else:
            next_number += 1
            dates[number] = draft.session_date
        numbers.append(number)
    return numbers


def _missed(visits: Sequence[Visit], previous: dt.date | None, date: dt.date) -> int:
    """No-shows after the previous attended session, up to this one's date."""
    return sum(1 for v in visits if v.noshow and (previous is None or v.date > previous) and v.date <= date)
