"""FHIR test data: sessions as /v1 payloads and the same sessions as a FHIR R4 Bundle."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from dropout_risk.features.instruments import LOINC
from dropout_risk.serving.settings import ClinicCode

CLINIC_SYSTEM = "http://clinic.example/fhir/instruments"  # a clinic's own code system for scales without LOINC
CLINIC_CODES = [
    ClinicCode(instrument="ors", system=CLINIC_SYSTEM, code="ors-total"),
    ClinicCode(instrument="srs", system=CLINIC_SYSTEM, code="srs-total"),
]
# The same two codes as the config file a clinic writes (README "Connecting a record system").
CODES_TOML = "".join(
    f'\n[[fhir.codes]]\ninstrument = "{c.instrument}"\nsystem = "{c.system}"\ncode = "{c.code}"\n' for c in CLINIC_CODES
)
CODES = {"ors": (CLINIC_SYSTEM, "ors-total"), "srs": (CLINIC_SYSTEM, "srs-total"), "phq9": (LOINC, "44261-6")}


def sessions(clients: int, per_client: int, seed: int, prefix: str = "c") -> dict[str, list[dict[str, Any]]]:
    """Weekly sessions (ORS, SRS, PHQ-9) with 0-2 no-shows between them: client id -> /v1 payloads."""
    rng = random.Random(seed)
    out = {}
    for c in range(clients):
        date = dt.date(2025, 1, 6) + dt.timedelta(days=rng.randrange(60))
        payloads = []
        for n in range(1, per_client + 1):
            missed = rng.choice([0, 0, 0, 1, 2])
            date += dt.timedelta(days=7 * (missed + 1) if n > 1 else 0)
            scores = {"ors": float(rng.randrange(5, 40)), "srs": float(rng.randrange(20, 41))}
            if rng.random() < 0.5:
                scores["phq9"] = float(rng.randrange(0, 28))
            payloads.append(
                {"session_number": n, "session_date": date.isoformat(), "scores": scores, "missed_since_last": missed}
            )
        out[f"{prefix}{c:04d}"] = payloads
    return out


def observation(client: str, instrument: str, score: float, date: str, encounter: str | None) -> dict[str, Any]:
    system, code = CODES[instrument]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{client}"},
        "effectiveDateTime": date,
        "valueQuantity": {"value": score},
    }
    if encounter:
        resource["encounter"] = {"reference": f"Encounter/{encounter}"}
    return resource


def appointment(client: str, date: dt.date, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": f"{date.isoformat()}T09:00:00Z",
        "participant": [{"actor": {"reference": f"Patient/{client}"}, "status": "accepted"}],
    }


def resources(by_client: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every session's Observations, an Appointment fulfilled for it and one no-show per missed appointment.

    The no-shows fall on the days after the previous session (before the first one for session 1), so
    the service counts the payload's ``missed_since_last`` however closely the sessions follow each other.
    """
    out = []
    for client, payloads in by_client.items():
        previous: dt.date | None = None
        for payload in payloads:
            date = dt.date.fromisoformat(payload["session_date"])
            encounter = f"{client}-{payload['session_number']}"
            for key, score in payload["scores"].items():
                out.append(observation(client, key, score, payload["session_date"], encounter))
            out.append(appointment(client, date, "fulfilled"))
            for k in range(1, (payload["missed_since_last"] or 0) + 1):
                day = previous + dt.timedelta(days=k) if previous else date - dt.timedelta(days=k)
                out.append(appointment(client, day, "noshow"))
            previous = date
    return out


def bundle(items: list[dict[str, Any]], kind: str = "batch") -> dict[str, Any]:
    entries = []
    for position, resource in enumerate(items):
        entry: dict[str, Any] = {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{position:012d}", "resource": resource}
        if kind in ("batch", "transaction"):
            entry["request"] = {"method": "POST", "url": resource["resourceType"]}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}
