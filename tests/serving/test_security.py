"""Keys: every /v1 route needs one, a key sees only its clinic, and nothing tells absent from foreign."""

from __future__ import annotations

import pytest

from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import revoke_key
from tests.support.serving import ADMIN_KEY

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}

ROUTES = [
    ("post", "/v1/clients/{cid}/sessions", S1),
    ("put", "/v1/clients/{cid}", {"age": 30}),
    ("get", "/v1/clients/{cid}", None),
    ("get", "/v1/clients/{cid}/risk", None),
    ("get", "/v1/clients", None),
    ("post", "/v1/score", {"sessions": [S1]}),
    ("get", "/v1/model", None),
    ("post", "/v1/admin/reload", None),
]


def _call(api, method, path, body, headers):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return getattr(api.client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_no_wrong_or_revoked_key_is_401(api, method, path, body):
    headers = api.new_clinic()
    path = path.format(cid="x1")
    assert _call(api, method, path, body, {}).status_code == 401
    assert _call(api, method, path, body, {"Authorization": "Bearer drk_not-a-key"}).status_code == 401
    assert _call(api, method, path, body, {"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    key = headers["Authorization"].removeprefix("Bearer ")
    with transaction(api.app.state.sessions) as db:
        assert revoke_key(db, key[:12]) == 1
    assert _call(api, method, path, body, headers).status_code == 401


def test_another_clinics_client_is_indistinguishable_from_an_absent_one(api):
    a, b = api.new_clinic(), api.new_clinic()
    assert api.client.post("/v1/clients/shared-id/sessions", json=S1, headers=a).status_code == 201
    for path in ("/v1/clients/shared-id", "/v1/clients/shared-id/risk"):
        foreign = api.client.get(path, headers=b)
        absent = api.client.get(path.replace("shared-id", "never-seen"), headers=b)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == absent.json()
    assert api.client.get("/v1/clients", headers=b).json()["total"] == 0
    # B may use the same identifier for its own client: a separate record, A's is untouched.
    assert (
        api.client.post("/v1/clients/shared-id/sessions", json={**S1, "scores": {"ors": 30.0}}, headers=b).status_code
        == 201
    )
    assert api.client.get("/v1/clients/shared-id", headers=a).json()["sessions"] == 1
    a_history = api.client.get("/v1/clients/shared-id/risk", headers=a).json()
    b_history = api.client.get("/v1/clients/shared-id/risk", headers=b).json()
    assert a_history["risk"]["probability"] != b_history["risk"]["probability"]


def test_admin_reload_needs_the_admin_key(api, champion):
    clinic = api.new_clinic()
    assert api.client.post("/v1/admin/reload", headers=clinic).status_code == 401
    response = api.client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    assert response.json() == {"swapped": False, "version": champion.version, "registry": "reachable"}
    # The admin key is not a clinic key: it reads no client data.
    assert api.client.get("/v1/clients", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 401
