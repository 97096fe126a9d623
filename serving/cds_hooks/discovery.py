"""What ``GET /cds-services`` lists: one ``patient-view`` service with a prefetch of the client's Observations."""

from __future__ import annotations

from typing import Any

from dropout_risk.serving.fhir.codes import CodeMap

SERVICE_ID = "dropout-risk"
HOOK = "patient-view"
PREFETCH_KEY = "observations"


def discovery(codes: CodeMap) -> dict[str, Any]:
    """The instruments' codes go into the prefetch query: the record system sends only what we can score."""
    code_list = ",".join(f"{system}|{code}" for system, code in sorted(codes.by_code))
    query = "Observation?patient={{context.patientId}}&_sort=-date&_count=200"
    if code_list:
        query += f"&code={code_list}"
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Psychotherapy dropout risk",
                "description": (
                    "The client's calibrated risk of ending therapy early, from the session scores, "
                    "with what moves it, the clinical flags and suggested next steps."
                ),
                "prefetch": {PREFETCH_KEY: query},
                "usageRequirements": "The record system is registered in [[cds_hooks.clients]] with its JWKS.",
            }
        ]
    }
