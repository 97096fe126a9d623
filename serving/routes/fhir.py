"""/fhir/r4: a clinic's record system sends Bundles of Observations in and reads RiskAssessments out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from dropout_risk.serving.deps import (
    BAD_BODY_RESPONSE,
    CLINIC_KEY_RESPONSES,
    NO_MODEL_RESPONSE,
    ClinicId,
    Codes,
    Db,
    Scoring,
)
from dropout_risk.serving.fhir import outcome
from dropout_risk.serving.fhir.importer import import_entries
from dropout_risk.serving.fhir.parse import Unreadable, read_bundle

FHIR_JSON = "application/fhir+json"
router = APIRouter(prefix="/fhir/r4", tags=["fhir"], responses=CLINIC_KEY_RESPONSES)


def fhir_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


@router.post(
    "",
    responses={
        200: {"description": "batch-/transaction-response Bundle, or an OperationOutcome for a collection"},
        400: {"description": "Not a Bundle of type transaction, batch or collection (OperationOutcome)"},
        409: {"description": "A transaction with a conflicting entry: nothing stored (OperationOutcome)"},
        422: {"description": "A transaction with an invalid entry: nothing stored (OperationOutcome)"},
        **BAD_BODY_RESPONSE,
        **NO_MODEL_RESPONSE,
    },
)
def post_bundle(
    bundle: Annotated[dict[str, Any], Body(description="A FHIR R4 Bundle (transaction, batch or collection)")],
    clinic: ClinicId,
    db: Db,
    scoring: Scoring,
    codes: Codes,
) -> JSONResponse:
    """Record the sessions of a Bundle of Observations, QuestionnaireResponses and Appointments, entry by entry."""
    try:
        incoming = read_bundle(bundle)
    except Unreadable as exc:
        issue = {"severity": "error", "code": "structure", "diagnostics": str(exc), "expression": ["Bundle"]}
        return fhir_response(outcome.operation_outcome([issue]), 400)
    imported = import_entries(db, clinic, incoming, codes, scoring)
    status, body = outcome.answer(imported)
    if status == 200:
        db.commit()
    else:
        db.rollback()
    return fhir_response(body, status)
