"""Served risks as FHIR R4 RiskAssessments, in a searchset Bundle.

One RiskAssessment per recorded session: the risk served when the session was recorded, by the
model version named in ``method``; ``qualitativeRisk`` is the band in HL7's risk-probability codes;
the factors and flags, in plain words, are ``note``s.
"""

from __future__ import annotations

import re
from typing import Any

from dropout_risk.serving.risk import Band
from dropout_risk.serving.store import ServedRisk

RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
QUALITATIVE: dict[Band, tuple[str, str]] = {
    "low": ("low", "Low likelihood"),
    "moderate": ("moderate", "Moderate likelihood"),
    "high": ("high", "High likelihood"),
}
MODEL_SYSTEM = "urn:dropout-risk:model"  # method.coding: model name/version (no standard system names them)
OUTCOME = {"text": "premature termination of treatment (dropout)"}


def resource_id(served: ServedRisk) -> str:
    """A FHIR id ([A-Za-z0-9.-]{1,64}) that carries no client identifier: the stored session's row."""
    return f"session-{served.id}"


def session_of(resource: str) -> int | None:
    """The stored session's row a RiskAssessment id names (``resource_id``), or None for any other id."""
    match = re.fullmatch(r"session-([1-9][0-9]{0,17})", resource)
    return int(match.group(1)) if match else None


def risk_assessment(client_id: str, served: ServedRisk, model_name: str) -> dict[str, Any]:
    risk = served.risk
    model = f"{model_name} version {risk.model_version}"
    code, display = QUALITATIVE[risk.band]
    notes = [{"text": f"factor ({f.feature}, {f.effect} the risk): {f.text}"} for f in risk.factors]
    notes += [{"text": f"flag: {flag.text}"} for flag in risk.flags]
    notes += [{"text": f"suggested next step: {s.text} (source: {s.source})"} for s in risk.suggestions]
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": resource_id(served),
        "status": "final",
        "subject": {"reference": f"Patient/{client_id}"},
        "occurrenceDateTime": served.session_date.isoformat(),
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": f"{model_name}/{risk.model_version}", "display": model}],
            "text": model,
        },
        "prediction": [
            {
                "outcome": OUTCOME,
                "probabilityDecimal": risk.probability,
                "qualitativeRisk": {"coding": [{"system": RISK_PROBABILITY, "code": code, "display": display}]},
                "rationale": f"after session {served.session_number} (model landmark {risk.landmark})",
            }
        ],
    }
    if served.basis:  # recorded through FHIR: the Observations (or QuestionnaireResponse) it came from
        resource["basis"] = [{"reference": reference} for reference in served.basis]
    if notes:
        resource["note"] = notes
    return resource


def searchset(base_url: str, self_url: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
    }
    if resources:  # FHIR has no empty lists: no match, no entry
        bundle["entry"] = [
            {"fullUrl": f"{base_url}/RiskAssessment/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ]
    return bundle
