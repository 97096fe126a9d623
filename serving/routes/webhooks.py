"""/v1/webhooks: a clinic's alert endpoints (risk.band_raised, flag.raised) and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from dropout_risk.serving.deps import BAD_BODY_RESPONSE, CLINIC_KEY_RESPONSES, ClinicId, Db, ReadDb, Responses, Settings
from dropout_risk.serving.schemas import ErrorBody
from dropout_risk.serving.webhooks import registry
from dropout_risk.serving.webhooks.targets import target_problem

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=CLINIC_KEY_RESPONSES)
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such endpoint for this clinic"}}
# An INTEGER key: beyond its range the database cannot even compare it (was a 500, OverflowError; now 422).
EndpointId = Annotated[int, Path(ge=1, le=2_147_483_647)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=registry.CreatedEndpoint,
    responses={422: {"model": ErrorBody, "description": "Not an https URL, or unknown events"}, **BAD_BODY_RESPONSE},
)
def create_endpoint(
    endpoint: registry.EndpointIn, clinic: ClinicId, db: Db, settings: Settings
) -> registry.CreatedEndpoint:
    """Register an endpoint for the events it wants; its signing secret is in this answer only."""
    problem = target_problem(endpoint.url, settings.webhooks.allow_loopback_http)
    if problem is not None:
        detail = [{"loc": ["body", "url"], "msg": problem, "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
    if len(registry.active(db, clinic)) >= registry.MAX_ENDPOINTS:
        detail = [{"loc": ["body"], "msg": f"at most {registry.MAX_ENDPOINTS} endpoints", "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
    created = registry.create(db, clinic, endpoint)
    db.commit()
    return created


@router.get("", response_model=list[registry.EndpointOut])
def list_endpoints(clinic: ClinicId, db: ReadDb) -> list[registry.EndpointOut]:
    return [
        registry.EndpointOut(id=e.id, url=e.url, events=list(e.events), created_at=e.created_at)
        for e in registry.active(db, clinic)
    ]


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_endpoint(endpoint_id: EndpointId, clinic: ClinicId, db: Db) -> Response:
    """Stop deliveries to the endpoint (pending ones are marked failed)."""
    if not registry.delete(db, clinic, endpoint_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such endpoint")
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{endpoint_id}/deliveries", response_model=list[registry.DeliveryOut], responses=NOT_FOUND)
def list_deliveries(
    endpoint_id: EndpointId,
    clinic: ClinicId,
    db: ReadDb,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[registry.DeliveryOut]:
    """The endpoint's deliveries, newest first: pending, delivered or failed (given up)."""
    if registry.find(db, clinic, endpoint_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such endpoint")
    return registry.deliveries(db, endpoint_id, limit)
