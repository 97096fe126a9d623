"""What the FHIR endpoint supports, as an R4 CapabilityStatement (``GET /fhir/r4/metadata``).

It states only what the service does: ``batch`` and ``transaction`` Bundles (and ``collection``, through
the same ``POST``), the resources read from them, and the ``RiskAssessment`` search by ``subject``.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

DATE = "2026-11-30"  # when this statement last changed (a CapabilityStatement's required date)
SECURITY = (
    "Every request but this one carries the clinic's API key: Authorization: Bearer <key> "
    "(dropout-risk keys create). A key sees its own clinic's clients only."
)
READ_FROM_BUNDLES = {
    "Observation": "A score: code (an instrument's code), subject Patient/ID, encounter or effective[x], "
    "valueQuantity.value or valueInteger. Accepted in Bundles only.",
    "QuestionnaireResponse": "A total score in an item whose linkId is an instrument's code; authored is the "
    "date. Accepted in Bundles only.",
    "Appointment": "status noshow counts as a missed session. Accepted in Bundles only.",
    "Encounter": "period.start dates the Observations that reference it. Accepted in Bundles only.",
}


def _version() -> str:
    try:
        return importlib.metadata.version("dropout-risk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def capability_statement(base_url: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {
            "type": "RiskAssessment",
            "interaction": [{"code": "search-type"}, {"code": "read"}],
            "searchParam": [
                {"name": "subject", "type": "reference", "documentation": "the client: ID or Patient/ID (required)"}
            ],
            "documentation": "One per recorded session: the dropout risk served after it.",
        }
    ]
    resources += [{"type": kind, "documentation": text} for kind, text in READ_FROM_BUNDLES.items()]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": DATE,
        "publisher": "dropout-risk",
        "kind": "instance",
        "software": {"name": "dropout-risk", "version": _version()},
        "implementation": {"description": "dropout-risk: psychotherapy dropout risk", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": SECURITY},
                "resource": resources,
                "interaction": [
                    {"code": "batch", "documentation": "POST [base]: a batch (or collection) Bundle"},
                    {"code": "transaction", "documentation": "POST [base]: all entries stored, or none"},
                ],
            }
        ],
    }
