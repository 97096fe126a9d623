"""Hostile inputs from issue 12: each is refused cleanly (4xx), never a 500, and never echoed back."""

from __future__ import annotations

import json

import pytest

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
NON_FINITE = ["NaN", "Infinity", "-Infinity"]


def _raw(api, method: str, path: str, body: str, headers: dict[str, str]):
    """Send JSON text as written: NaN and Infinity are not JSON, but Python's parser takes them."""
    return api.client.request(method, path, content=body, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("token", NON_FINITE)
def test_non_finite_numbers_are_422_everywhere(api, token):
    headers = api.new_clinic()
    sessions = json.dumps([S1])
    bodies = [
        ("POST", "/v1/score", f'{{"sessions": {sessions}, "covariates": {{"age": {token}}}}}'),
        ("POST", "/v1/score", f'{{"sessions": {sessions}, "covariates": {{"weight": {token}}}}}'),
        ("PUT", "/v1/clients/nf", f'{{"covariates": {{"age": {token}}}}}'),
        ("PUT", "/v1/clients/nf", f'{{"covariates": {{"weight": {token}}}}}'),
        ("PUT", "/v1/clients/nf", f'{{"age": {token}}}'),
        ("POST", "/v1/clients/nf/sessions", json.dumps(S1).replace("14.5", token)),
    ]
    for method, path, body in bodies:
        response = _raw(api, method, path, body, headers)
        assert response.status_code == 422, (method, path, body, response.status_code)
        assert token.lower() not in response.text.lower().replace("allow_inf_nan", "")
    # Nothing was stored: the client's sessions still record and score.
    assert api.client.post("/v1/clients/nf/sessions", json=S1, headers=headers).status_code == 201
    assert api.client.get("/v1/clients/nf", headers=headers).json()["covariates"] == {}
