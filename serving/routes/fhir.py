"""/fhir/r4: a clinic's record system sends Bundles of Observations in and reads RiskAssessments out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from dropout_risk.serving import service
from dropout_risk.serving.deps import (
    CLINIC_KEY_RESPONSES,
    NO_MODEL_RESPONSE,
    ClinicId,
    Codes,
    Db,
    Holder,
    ReadDb,
    Scoring,
    Settings,
)
from dropout_risk.serving.fhir import outcome
from dropout_risk.serving.fhir.capability import capability_statement
from dropout_risk.serving.fhir.importer import import_entries
from dropout_risk.serving.fhir.parse import Unreadable, read_bundle
from dropout_risk.serving.fhir.readings import CLIENT_ID
from dropout_risk.serving.fhir.risk_assessment import risk_assessment, searchset, session_of

FHIR_JSON = "application/fhir+json"
# FHIR's id datatype: 1-64 of letters, digits, '-' and '.'; anything else is not an id at all (422).
ResourceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="The RiskAssessment's id")]
router = APIRouter(prefix="/fhir/r4", tags=["fhir"], responses=CLINIC_KEY_RESPONSES)
# FHIR's capabilities interaction: public, as a client reads it before it has credentials (serving.headers).
public_router = APIRouter(prefix="/fhir/r4", tags=["fhir"])


def fhir_body(description: str, *, or_json: bool = False) -> dict[str, Any]:
    """An answer documented as FHIR JSON (``or_json``: or the service's JSON error body, by the same status)."""
    content = {FHIR_JSON: {"schema": {"type": "object"}}}
    if or_json:
        content["application/json"] = {"schema": {"type": "object"}}
    return {"description": description, "content": content}


JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


def fhir_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def refusal(status: int, code: str, expression: str, rule: str) -> JSONResponse:
    issue = {"severity": "error", "code": code, "diagnostics": rule, "expression": [expression]}
    return fhir_response(outcome.operation_outcome([issue]), status)


@router.post(
    "",
    responses={
        200: fhir_body("batch-/transaction-response Bundle, or an OperationOutcome for a collection"),
        **NO_MODEL_RESPONSE,
        400: fhir_body(
            "Not a Bundle of type transaction, batch or collection (OperationOutcome); a body that is not JSON text",
            or_json=True,
        ),
        409: fhir_body("A transaction with a conflicting entry: nothing stored (OperationOutcome)"),
        422: fhir_body(
            "A transaction with an invalid entry: nothing stored (OperationOutcome); not a JSON object", or_json=True
        ),
    },
)
def post_bundle(
    bundle: Annotated[dict[str, Any], Body(description="A FHIR R4 Bundle (transaction, batch or collection)")],
    clinic: ClinicId,
    db: Db,
    scoring: Scoring,
    codes: Codes,
    settings: Settings,
) -> JSONResponse:
    """Record the sessions of a Bundle of Observations, QuestionnaireResponses and Appointments, entry by entry."""
    try:
        incoming = read_bundle(bundle)
    except Unreadable as exc:
        return refusal(400, "structure", "Bundle", str(exc))
    imported = import_entries(db, clinic, incoming, codes, scoring, settings.webhooks.band_rise)
    status, body = outcome.answer(imported)
    if status == 200:
        db.commit()
    else:
        db.rollback()
    return fhir_response(body, status)


@router.get(
    "/RiskAssessment",
    responses={
        200: fhir_body("A searchset Bundle: the risk served after each of the client's sessions"),
        400: fhir_body("No subject, or a _format other than JSON (OperationOutcome)"),
    },
)
def search_risk_assessments(
    request: Request,
    clinic: ClinicId,
    db: ReadDb,
    holder: Holder,
    subject: Annotated[str | None, Query(description="The client: ID or Patient/ID")] = None,
    format_: Annotated[str | None, Query(alias="_format", description="json (the only format served)")] = None,
) -> JSONResponse:
    """Every risk served for the client, as R4 RiskAssessments; another clinic's client is an empty result."""
    if format_ is not None and format_ not in JSON_FORMATS:
        return refusal(400, "not-supported", "_format", "only JSON is served: _format=json")
    client_id = (subject or "").removeprefix("Patient/")
    if not CLIENT_ID.match(client_id):
        return refusal(400, "required", "subject", "subject must be the client, as ID or Patient/ID")
    risks = service.client_served_risks(db, clinic, client_id)
    base = str(request.url_for("post_bundle")).rstrip("/")
    resources = [risk_assessment(client_id, served, holder.name) for served in risks]
    return fhir_response(searchset(base, f"{base}/RiskAssessment?subject=Patient/{client_id}", resources))


@router.get(
    "/RiskAssessment/{resource_id}",
    responses={
        200: fhir_body("The RiskAssessment (a searchset entry's fullUrl resolves here)"),
        404: fhir_body("No such RiskAssessment for this clinic (OperationOutcome)"),
    },
)
def read_risk_assessment(resource_id: ResourceId, clinic: ClinicId, db: ReadDb, holder: Holder) -> JSONResponse:
    """FHIR's read interaction; another clinic's RiskAssessment is not found, as one that does not exist."""
    found = service.served_risk(db, clinic, session_of(resource_id))
    if found is None:
        return refusal(404, "not-found", "RiskAssessment.id", "no such RiskAssessment for this clinic")
    client_id, served = found
    return fhir_response(risk_assessment(client_id, served, holder.name))


@public_router.get(
    "/metadata",
    responses={200: fhir_body("An R4 CapabilityStatement")},
)
def metadata(request: Request) -> JSONResponse:
    """What this FHIR endpoint supports (no key needed)."""
    return fhir_response(capability_statement(str(request.url_for("post_bundle")).rstrip("/")))
