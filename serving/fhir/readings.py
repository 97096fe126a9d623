"""One resource into what the service records: a score of one instrument at one session, or an appointment.

- ``Observation``: ``subject`` (Patient/ID) is the client, ``code`` names the instrument (``fhir.codes``),
  ``valueQuantity``/``valueInteger`` is the score, ``encounter`` (else the effective date) the session,
  ``effective[x]`` (else the referenced Encounter's ``period.start``) its date.
- ``QuestionnaireResponse``: the same, with the total score in an item whose ``linkId`` is one of the
  instrument's codes (e.g. 44261-6), ``authored`` the date.
- ``Appointment``: its Patient participant, ``start`` and ``status`` (``noshow`` counts as missed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.fhir.parse import Entry, Issue

USED_STATUSES = frozenset({"final", "amended", "corrected", "completed"})
CLIENT_ID = re.compile(r"^[A-Za-z0-9._:@~-]{1,200}$")  # serving.schemas.ClientId's rule


@dataclass(frozen=True)
class Reading:
    entry: Entry
    client_id: str
    session_key: str  # the encounter's reference, else the date
    session_date: dt.date
    instrument: str
    score: float
    element: str  # where the score is, for its problems


@dataclass(frozen=True)
class Visit:
    entry: Entry
    client_id: str
    date: dt.date
    noshow: bool


def patient_id(reference: Any) -> str | None:
    """The id of a ``Patient/ID`` reference (relative or absolute), else None."""
    text = getattr(reference, "reference", None) or ""
    parts = text.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and CLIENT_ID.match(parts[-1]):
        return parts[-1]
    return None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def encounter_dates(entries: list[Entry]) -> dict[str, dt.date]:
    """Encounters in the same input: "Encounter/ID" (and their fullUrl) -> the date their period starts."""
    dates: dict[str, dt.date] = {}
    for entry in entries:
        resource = entry.resource
        if entry.type_name == "Encounter" and resource.period is not None and resource.id:
            start = _date(resource.period.start)
            if start is not None:
                dates[f"Encounter/{resource.id}"] = start
    return dates


def _client(entry: Entry, subject: Any) -> str | None:
    client = patient_id(subject)
    if client is None:
        entry.fail(
            "required", "subject", "must reference the client as Patient/ID (ID: 1-200 of A-Z a-z 0-9 . _ : @ ~ -)"
        )
    return client


def _session(
    entry: Entry, resource: Any, own_date: Any, encounters: Mapping[str, dt.date]
) -> tuple[str, dt.date] | None:
    encounter = getattr(resource.encounter, "reference", None) if resource.encounter is not None else None
    date = _date(own_date) or (encounters.get(encounter) if encounter else None)
    if date is None:
        where = "effective[x]" if entry.type_name == "Observation" else "authored"
        entry.fail("required", where, "a date is needed: this element, or an Encounter in the input with period.start")
        return None
    return (encounter or date.isoformat()), date


def observation_reading(entry: Entry, codes: CodeMap, encounters: Mapping[str, dt.date]) -> Reading | None:
    obs = entry.resource
    codings = [(c.system, c.code) for c in (obs.code.coding or [])]
    instrument = codes.instrument(codings)
    unknown = "no instrument declares this code (fhir.codes)"
    if not _to_import(entry, instrument, obs.status, "code", unknown) or instrument is None:
        return None
    client = _client(entry, obs.subject)
    session = _session(
        entry, obs, obs.effectiveDateTime or obs.effectiveInstant or _start(obs.effectivePeriod), encounters
    )
    if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        score, element = float(obs.valueQuantity.value), "valueQuantity.value"
    elif obs.valueInteger is not None:
        score, element = float(obs.valueInteger), "valueInteger"
    else:
        entry.fail("required", "value[x]", "the score must be valueQuantity.value or valueInteger")
        return None
    if client is None or session is None:
        return None
    return Reading(entry, client, session[0], session[1], instrument, score, element)


def _start(period: Any) -> Any:
    return None if period is None else period.start


def questionnaire_reading(entry: Entry, codes: CodeMap, encounters: Mapping[str, dt.date]) -> Reading | None:
    response = entry.resource
    found = next(_total_items(response.item or [], codes, "item"), None)
    unknown = "no item's linkId is an instrument's code (fhir.codes)"
    if not _to_import(entry, found and found[0], response.status, "item", unknown) or found is None:
        return None
    instrument, item, path = found
    client = _client(entry, response.subject)
    session = _session(entry, response, response.authored, encounters)
    answer = (item.answer or [None])[0]
    score = None if answer is None else _answer_value(answer)
    if score is None:
        entry.fail("required", f"{path}.answer", "the total score must be valueInteger, valueDecimal or valueQuantity")
        return None
    if client is None or session is None:
        return None
    return Reading(entry, client, session[0], session[1], instrument, score, f"{path}.answer[0]")


def _total_items(items: list[Any], codes: CodeMap, path: str) -> Iterator[tuple[str, Any, str]]:
    for position, item in enumerate(items):
        here = f"{path}[{position}]"
        key = codes.by_link_id(item.linkId)
        if key is not None:
            yield key, item, here
        yield from _total_items(item.item or [], codes, f"{here}.item")


def _answer_value(answer: Any) -> float | None:
    if answer.valueInteger is not None:
        return float(answer.valueInteger)
    if answer.valueDecimal is not None:
        return float(answer.valueDecimal)
    if answer.valueQuantity is not None and answer.valueQuantity.value is not None:
        return float(answer.valueQuantity.value)
    return None


def appointment_visit(entry: Entry) -> Visit | None:
    appointment = entry.resource
    clients = [patient_id(p.actor) for p in appointment.participant or [] if p.actor is not None]
    client = next((c for c in clients if c is not None), None)
    if client is None:
        entry.fail("required", "participant", "one participant's actor must reference the client as Patient/ID")
        return None
    date = _date(appointment.start)
    if date is None:
        if appointment.status == "noshow":
            entry.fail("required", "start", "a no-show needs its start to be counted as missed")
        return None
    return Visit(entry, client, date, appointment.status == "noshow")


def _to_import(entry: Entry, instrument: str | None, status: str | None, element: str, unknown: str) -> bool:
    """Whether a resource names an instrument and has a status worth importing; a warning on the entry if not."""
    if instrument is None:
        entry.issues.append(_not_imported(element, unknown))
        return False
    if status not in USED_STATUSES:
        entry.issues.append(_not_imported("status", "only final, amended, corrected or completed results are imported"))
        return False
    return True


def _not_imported(element: str, rule: str) -> Issue:
    return Issue("warning", "not-supported", element, f"not imported: {rule}")
