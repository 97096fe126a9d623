"""Tenant isolation on every /v1 and /fhir endpoint: a key reaches its own clinic's clients and nothing else.

Beyond test_security.py: the endpoint list comes from the OpenAPI schema (a new
/v1 endpoint fails the coverage test until it is listed here); every kind of
bad credential gets the same 401 and writes nothing; clinic A probing clinic
B's client id sees exactly what an absent id shows, on reads and on writes (the
POST and the PUT create A's own client, B's rows stay byte-identical); the
caseload, /v1/score and /v1/model never show one clinic's data to another.
Runs on SQLite and PostgreSQL (the ``api`` fixture).
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import revoke_key
from dropout_risk.serving.tables import Client, Clinic, SessionRecord
from tests.support.serving import ADMIN_KEY

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 11.0, "srs": 29.5}, "missed_since_last": 2}
S3 = {"session_number": 3, "session_date": "2025-03-17", "scores": {"ors": 12.0, "srs": 30.0}}
B_UPDATE = {"age": 41, "gender": "F", "therapist_id": "t-b", "covariates": {"referral": "gp"}}

# Every /v1 operation, with a body valid for it; {cid} is a client id.
V1 = {
    ("POST", "/v1/clients/{client_id}/sessions"): S1,
    ("PUT", "/v1/clients/{client_id}"): {"age": 30, "status": "ongoing"},
    ("GET", "/v1/clients/{client_id}"): None,
    ("GET", "/v1/clients/{client_id}/risk"): None,
    ("GET", "/v1/clients"): None,
    ("POST", "/v1/score"): {"sessions": [S1, S2]},
    ("GET", "/v1/model"): None,
    ("POST", "/v1/admin/reload"): None,
    ("GET", "/v1/monitoring"): None,  # a clinic's key (its own clinic) or the admin key (every clinic)
    ("POST", "/v1/webhooks"): {"url": "https://hooks.example/in", "events": ["flag.raised"]},
    ("GET", "/v1/webhooks"): None,
    ("DELETE", "/v1/webhooks/{endpoint_id}"): None,
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): None,
    # FHIR takes the same keys (issue 15)
    ("POST", "/fhir/r4"): {"resourceType": "Bundle", "type": "batch", "entry": []},
    ("GET", "/fhir/r4/RiskAssessment"): None,
    ("GET", "/fhir/r4/RiskAssessment/{resource_id}"): None,  # another clinic's: 404 as a missing one (its own test)
}
UNAUTHORIZED = {"detail": "missing, unknown or revoked API key"}


def _call(api, method: str, path: str, headers: dict, body=None, client_id: str = "x1"):
    kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
    for name, value in (("{client_id}", client_id), ("{endpoint_id}", "1"), ("{resource_id}", "session-1")):
        path = path.replace(name, value)
    return api.client.request(method, path, **kwargs)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _counts(api) -> tuple[int, int]:
    with transaction(api.app.state.sessions) as db:
        return (
            db.scalar(select(func.count()).select_from(Client)),
            db.scalar(select(func.count()).select_from(SessionRecord)),
        )


def _rows(api, clinic_name: str) -> list[tuple]:
    """Every stored column of a clinic's clients and sessions."""
    with transaction(api.app.state.sessions) as db:
        clinic = db.scalar(select(Clinic.id).where(Clinic.name == clinic_name))
        clients = db.execute(select(*Client.__table__.c).where(Client.clinic_id == clinic).order_by(Client.id)).all()
        sessions = db.execute(
            select(*SessionRecord.__table__.c)
            .join(Client, Client.id == SessionRecord.client_pk)
            .where(Client.clinic_id == clinic)
            .order_by(SessionRecord.id)
        ).all()
    return [tuple(row) for row in [*clients, *sessions]]


def _views(api, headers: dict, client_ids: list[str]) -> list:
    """What a clinic's key sees of its clients: each client, its risk, the caseload in every order."""
    seen = [
        api.client.get(f"/v1/clients?order={order}", headers=headers).json()
        for order in ("risk", "recent", "client_id")
    ]
    for client_id in client_ids:
        seen += [api.client.get(f"/v1/clients/{client_id}{tail}", headers=headers).json() for tail in ("", "/risk")]
    return seen


def _clinic_with_client(api, client_id: str) -> tuple[str, dict]:
    """Clinic B: one client with two sessions and covariates, as a clinic would have it."""
    name, headers = api.add_clinic()
    for body in (S1, S2):
        assert api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers).status_code == 201
    assert api.client.put(f"/v1/clients/{client_id}", json=B_UPDATE, headers=headers).status_code == 200
    return name, headers


def test_every_v1_endpoint_is_covered(api):
    documented = {
        (method.upper(), path)
        for path, operations in api.app.openapi()["paths"].items()
        for method in operations
        if path.startswith(("/v1/", "/fhir/")) and path != "/fhir/r4/metadata"  # public: FHIR's capabilities
    }
    assert documented == set(V1)


def _bad_credentials(api) -> dict[str, dict]:
    """Every way of not holding a valid key for a clinic route."""
    _, live = api.add_clinic()
    key = _key(live)
    _, revoked = api.add_clinic()
    with transaction(api.app.state.sessions) as db:
        assert revoke_key(db, _key(revoked)[:12]) == 1
    return {
        "none": {},
        "unknown": _bearer("drk_not-a-key"),
        "empty": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "other scheme": {"Authorization": f"Token {key}"},
        "no scheme": {"Authorization": key},
        "prefix only": _bearer(key[:12]),
        "extended": _bearer(key + "x"),
        "stored digest": _bearer(hashlib.sha256(key.encode()).hexdigest()),
        "revoked": revoked,
        "admin key": _bearer(ADMIN_KEY),
    }


@pytest.mark.parametrize(("method", "path"), list(V1), ids=[f"{m} {p}" for m, p in V1])
def test_every_bad_credential_is_the_same_401_and_writes_nothing(api, method, path):
    credentials = _bad_credentials(api)
    if path.startswith("/v1/admin/"):  # the admin route: a clinic key is a bad credential, the admin key is not
        credentials.pop("admin key")
        credentials["clinic key"] = api.new_clinic()
    if path == "/v1/monitoring":  # both kinds of key are good credentials there
        credentials.pop("admin key")
    before = _counts(api)
    for name, headers in credentials.items():
        response = _call(api, method, path, headers, V1[(method, path)])
        assert response.status_code == 401, (name, response.text)
        assert response.json() == UNAUTHORIZED, name  # nothing tells a revoked key from an unknown one
        assert response.headers["www-authenticate"] == "Bearer", name
    assert _counts(api) == before


def test_another_clinics_client_is_an_absent_one_on_every_client_route(api):
    """A probes B's client id and a never-seen id with the same requests: identical answers, B untouched."""
    b_name, b = _clinic_with_client(api, "shared-1")
    b_before, b_rows = _views(api, b, ["shared-1"]), _rows(api, b_name)
    a = api.new_clinic()
    probes = [  # in order: reads before the client exists for A, then writes that create A's own client
        ("GET", "/v1/clients/{client_id}", None, 404),
        ("GET", "/v1/clients/{client_id}/risk", None, 404),
        ("POST", "/v1/clients/{client_id}/sessions", S3, 422),  # "must be number 1": not B's next number
        ("POST", "/v1/clients/{client_id}/sessions", S2, 422),  # B's stored session 2: not a 409 or a replay
        ("POST", "/v1/clients/{client_id}/sessions", S1, 201),  # B's stored session 1: created, not a 200 replay
        ("POST", "/v1/clients/{client_id}/sessions", S1, 200),  # A's own retry
        ("POST", "/v1/clients/{client_id}/sessions", {**S1, "scores": {"ors": 20.0}}, 409),
        ("GET", "/v1/clients/{client_id}", None, 200),
        ("GET", "/v1/clients/{client_id}/risk", None, 200),
        ("PUT", "/v1/clients/{client_id}", {"status": "dropout"}, 200),
        ("GET", "/v1/clients/{client_id}", None, 200),
    ]
    for method, path, body, status in probes:
        foreign = _call(api, method, path, a, body, client_id="shared-1")
        absent = _call(api, method, path, a, body, client_id="never-seen-1")
        assert foreign.status_code == absent.status_code == status, (method, path, foreign.text)
        assert foreign.text.replace("shared-1", "ID") == absent.text.replace("never-seen-1", "ID"), (method, path)
        assert foreign.headers.get("content-type") == absent.headers.get("content-type")
    mine = api.client.get("/v1/clients/shared-1", headers=a).json()
    assert (mine["sessions"], mine["status"], mine["covariates"]) == (1, "dropout", {})
    assert _views(api, b, ["shared-1"]) == b_before
    assert _rows(api, b_name) == b_rows


def test_a_put_on_another_clinics_id_creates_its_own_client(api):
    b_name, b = _clinic_with_client(api, "shared-2")
    b_before, b_rows = _views(api, b, ["shared-2"]), _rows(api, b_name)
    a = api.new_clinic()
    update = {"status": "completed", "age": 29, "gender": "M", "covariates": {"referral": "self"}}
    foreign = api.client.put("/v1/clients/shared-2", json=update, headers=a)
    absent = api.client.put("/v1/clients/never-seen-2", json=update, headers=a)
    assert foreign.status_code == absent.status_code == 200
    assert {**foreign.json(), "client_id": "ID"} == {**absent.json(), "client_id": "ID"}
    created = foreign.json()
    assert created["sessions"] == 0 and created["probability"] is None and created["last_session_date"] is None
    assert created["covariates"] == {"referral": "self", "age": 29, "gender": "M"}  # none of B's (therapist_id)
    assert _views(api, b, ["shared-2"]) == b_before
    assert _rows(api, b_name) == b_rows
    # A's client stays A's: A's further writes do not reach B, B's do not reach A.
    assert api.client.post("/v1/clients/shared-2/sessions", json=S1, headers=a).status_code == 201
    assert api.client.post("/v1/clients/shared-2/sessions", json=S3, headers=b).status_code == 201
    assert api.client.get("/v1/clients/shared-2", headers=a).json()["sessions"] == 1
    assert api.client.get("/v1/clients/shared-2", headers=b).json()["sessions"] == 3


def test_the_caseload_never_lists_another_clinics_clients(api):
    b_name, b = _clinic_with_client(api, "b-only")
    for client_id in ("shared-3", "b-other"):
        assert api.client.post(f"/v1/clients/{client_id}/sessions", json=S1, headers=b).status_code == 201
    a = api.new_clinic()
    for order in ("risk", "recent", "client_id"):
        empty = api.client.get(f"/v1/clients?order={order}", headers=a).json()
        assert (empty["items"], empty["total"]) == ([], 0)
    # A's own clients, one under an identifier B also uses.
    assert (
        api.client.post("/v1/clients/shared-3/sessions", json={**S1, "scores": {"ors": 30.0}}, headers=a).status_code
        == 201
    )
    assert api.client.put("/v1/clients/a-only", json={"age": 50}, headers=a).status_code == 200
    b_ids = {"b-only", "shared-3", "b-other"}
    for order in ("risk", "recent", "client_id"):
        listed = []
        for page in range(1, 5):  # one per page, past the end
            body = api.client.get(f"/v1/clients?order={order}&page={page}&page_size=1", headers=a).json()
            assert body["total"] == 2
            listed += body["items"]
        assert sorted(item["client_id"] for item in listed) == ["a-only", "shared-3"]
        shared = next(item for item in listed if item["client_id"] == "shared-3")
        assert shared["probability"] == api.client.get("/v1/clients/shared-3", headers=a).json()["probability"]
        assert shared["probability"] != api.client.get("/v1/clients/shared-3", headers=b).json()["probability"]
        b_listing = api.client.get(f"/v1/clients?order={order}&page_size=1000", headers=b).json()
        assert {item["client_id"] for item in b_listing["items"]} == b_ids and b_listing["total"] == 3
    assert "a-only" not in str(_rows(api, b_name))


def test_score_stores_nothing_visible_to_anyone(api):
    b_name, b = _clinic_with_client(api, "b-score")
    a = api.new_clinic()
    before = (_counts(api), _views(api, a, []), _views(api, b, ["b-score"]), _rows(api, b_name))
    bodies = [
        {"sessions": [S1, S2, S3], "covariates": {"age": 33}},  # scored
        {"sessions": [S1, S2]},  # B's client's very history: nothing links it to B's client
        {"sessions": [S1, {**S2, "session_number": 3}]},  # a gap: 422
        {"sessions": [S1], "client_id": "b-score"},  # there is no client to name: 422
    ]
    statuses = [
        api.client.post("/v1/score", json=body, headers=headers).status_code for body in bodies for headers in (a, b)
    ]
    assert statuses == [200, 200, 200, 200, 422, 422, 422, 422]
    response = api.client.post("/v1/score", json=bodies[1], headers=a)
    assert "b-score" not in response.text and "client_id" not in response.json()
    assert (_counts(api), _views(api, a, []), _views(api, b, ["b-score"]), _rows(api, b_name)) == before
    assert api.client.get("/v1/clients/b-score", headers=a).status_code == 404


def test_model_info_is_the_same_for_every_clinic_and_names_no_client(api):
    _, b = _clinic_with_client(api, "b-model-7")
    a = api.new_clinic()
    seen_by_a, seen_by_b = (api.client.get("/v1/model", headers=h) for h in (a, b))
    assert seen_by_a.status_code == seen_by_b.status_code == 200
    assert seen_by_a.json() == seen_by_b.json()
    assert "b-model-7" not in seen_by_a.text and "client" not in seen_by_a.text
