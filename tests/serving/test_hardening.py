"""Hostile inputs from issue 12: each is refused cleanly (4xx), never a 500, and never echoed back."""

from __future__ import annotations

import json
import re

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


def test_metrics_label_only_known_methods_and_route_templates(api):
    """Made-up methods and paths from unauthenticated requests must not each add a metric series."""
    for i in range(40):
        api.client.request(f"M{i}XYZ", "/healthz")
        api.client.get(f"/no-such-path-{i}")
        api.client.request(f"Q{i}", f"/made/up/{i}")
    before = api.client.get("/metrics").text
    for i in range(40, 80):
        api.client.request(f"M{i}XYZ", "/healthz")
        api.client.get(f"/no-such-path-{i}")
    after = api.client.get("/metrics").text
    assert "XYZ" not in after and "no-such-path" not in after and "/made/up" not in after
    assert 'method="other"' in after and 'route="other"' in after
    series = [line.split(" ")[0] for line in after.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))
    grown = {s for s in series} - {line.split(" ")[0] for line in before.splitlines() if not line.startswith("#")}
    assert all("/metrics" in s for s in grown), grown  # only the scrape itself may add a series


def _sign_in(api, headers: dict[str, str]) -> None:
    page = api.client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    key = headers["Authorization"].removeprefix("Bearer ")
    response = api.client.post("/ui/login", data={"key": key, "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303


@pytest.mark.parametrize(
    "query", ["?page=%C2%B2", "?page=%E2%91%A0", "?page=%D9%A3", "?page=-1", "?page=%20%201", "?page=1_0"]
)
def test_dashboard_page_numbers_parse_strictly(api, query):
    """str.isdigit() is true for superscripts and circled digits, which int() refuses: that was a 500."""
    _sign_in(api, api.new_clinic())
    response = api.client.get(f"/ui/clients{query}")
    assert response.status_code == 200
    api.client.cookies.clear()


@pytest.mark.parametrize(
    "query", ["?recorded=%E2%91%A0", "?recorded=%C2%B2", "?recorded=%D9%A1", "?recorded=1_0", "?recorded=+1"]
)
def test_dashboard_recorded_parses_strictly(api, query):
    headers = api.new_clinic()
    assert api.client.post("/v1/clients/uq-1/sessions", json=S1, headers=headers).status_code == 201
    _sign_in(api, headers)
    response = api.client.get(f"/ui/clients/uq-1{query}")
    assert response.status_code == 200 and "Session 1 recorded." not in response.text
    api.client.cookies.clear()


@pytest.mark.parametrize("date", ["9999-12-31", "0001-01-01", "1600-01-01", "1899-12-31", "2101-01-01"])
def test_dates_outside_the_documented_range_are_422(api, date):
    """Beyond numpy's nanosecond range (1677-2262) dates were scored wrongly ("22490.3 days apart")."""
    headers = api.new_clinic()
    session = {**S1, "session_date": date}
    for path, body in (("/v1/score", {"sessions": [session]}), ("/v1/clients/dr/sessions", session)):
        response = api.client.post(path, json=body, headers=headers)
        assert response.status_code == 422, (path, response.status_code)
        assert date not in response.text
        assert "1900-01-01 to 2100-12-31" in response.text
    assert api.client.get("/v1/clients/dr", headers=headers).status_code == 404  # nothing stored


def test_the_range_edges_are_accepted(api):
    headers = api.new_clinic()
    first, last = {**S1, "session_date": "1900-01-01"}, {**S1, "session_number": 2, "session_date": "2100-12-31"}
    assert api.client.post("/v1/score", json={"sessions": [first, last]}, headers=headers).status_code == 200


def test_v1_responses_are_not_cached_and_https_gets_hsts(api):
    headers = api.new_clinic()
    responses = [
        api.client.post("/v1/clients/h1/sessions", json=S1, headers=headers),
        api.client.get("/v1/clients/h1/risk", headers=headers),
        api.client.get("/v1/clients/absent", headers=headers),  # 404
        api.client.get("/v1/clients", headers={}),  # 401
        api.client.post("/v1/score", json={"sessions": []}, headers=headers),  # 422
    ]
    for response in responses:
        assert response.headers.get("cache-control") == "no-store", response.request.url
        assert "strict-transport-security" not in response.headers  # plain HTTP: HSTS means nothing there
    assert "no-store" not in api.client.get("/healthz").headers.get("cache-control", "")
    secure = api.client.get("https://testserver/v1/clients/h1", headers=headers)
    assert secure.status_code == 200 and secure.headers["cache-control"] == "no-store"
    hsts = secure.headers["strict-transport-security"]
    assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31_536_000
    assert "strict-transport-security" in api.client.get("https://testserver/healthz").headers


BAD_COVARIATES = [
    ('{"client_id": "other"}', "reserved"),
    ('{"status": "dropout"}', "reserved"),
    ('{"clinic_id": "north"}', "reserved"),
    ('{"session_date": "2025-01-01"}', "reserved"),
    ('{"note": "\\udfff"}', "Unicode"),
    ('{"\\ud800x": 1}', "Unicode"),
    ('{"level": -1e308}', "finite"),
    ('{"level": 1e300}', "finite"),
    ('{"age": -1}', "0 to 120"),
    ('{"age": 121.5}', "0 to 120"),
    ('{"note": "' + "x" * 201 + '"}', "200 characters"),
    ("{" + ", ".join(f'"c{i}": {i}' for i in range(51)) + "}", "at most 50"),
]


@pytest.mark.parametrize(("covariates", "rule"), BAD_COVARIATES)
def test_bad_covariates_are_422_naming_the_rule_not_the_value(api, covariates, rule):
    """A lone surrogate was stored and then broke GET and every export; client_id overwrote the exported column."""
    headers = api.new_clinic()
    sessions = json.dumps([S1])
    for method, path, body in (
        ("PUT", "/v1/clients/bc", f'{{"covariates": {covariates}}}'),
        ("POST", "/v1/score", f'{{"sessions": {sessions}, "covariates": {covariates}}}'),
    ):
        response = _raw(api, method, path, body, headers)
        assert response.status_code == 422, (method, covariates, response.status_code)
        assert rule in response.text
        for secret in ("udfff", "ud800", "1e308", "1e+308", "xxxxxxxxxx", "north"):
            assert secret not in response.text.lower()
    assert api.client.get("/v1/clients/bc", headers=headers).status_code == 404  # nothing stored


@pytest.mark.parametrize("field", ["gender", "therapist_id"])
def test_episode_text_must_be_valid_unicode(api, field):
    headers = api.new_clinic()
    response = _raw(api, "PUT", "/v1/clients/gu", f'{{"{field}": "ok\\udfff"}}', headers)
    assert response.status_code == 422 and field in response.text and "udfff" not in response.text.lower()


def test_the_per_client_limit_counts_what_is_stored(api):
    headers = api.new_clinic()
    first = {"covariates": {f"a{i}": i for i in range(30)}}
    assert api.client.put("/v1/clients/lim", json=first, headers=headers).status_code == 200
    second = {"covariates": {f"b{i}": i for i in range(30)}}
    response = api.client.put("/v1/clients/lim", json=second, headers=headers)
    assert response.status_code == 422 and "at most 50" in response.text
    assert len(api.client.get("/v1/clients/lim", headers=headers).json()["covariates"]) == 30


def test_valid_covariates_at_the_limits_are_accepted(api):
    headers = api.new_clinic()
    ok = {"age": 120, "level": -1e9, "note": "é" * 200, "flag": True, "none": None, "therapist": "t1"}
    assert api.client.put("/v1/clients/ok", json={"covariates": ok, "age": 0}, headers=headers).status_code == 200
    assert api.client.post("/v1/score", json={"sessions": [S1], "covariates": ok}, headers=headers).status_code == 200


def test_sign_out_ends_the_session_for_a_copied_cookie(api):
    """A cookie copied before sign-out opened the caseload and recorded sessions for up to 8 hours."""
    headers = api.new_clinic()
    assert api.client.post("/v1/clients/so-1/sessions", json=S1, headers=headers).status_code == 201
    _sign_in(api, headers)
    page = api.client.get("/ui/clients/so-1")
    assert page.status_code == 200 and "so-1" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    copied = api.client.cookies.get("drk_ui")
    signed_out = api.client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"].endswith("/ui/login")

    api.client.cookies.clear()
    api.client.cookies.set("drk_ui", copied, path="/ui")  # the old cookie, replayed
    caseload = api.client.get("/ui/clients", follow_redirects=False)
    assert caseload.status_code == 303 and caseload.headers["location"].endswith("/ui/login")
    form = {
        "csrf_token": csrf,
        "session_number": "2",
        "session_date": "2025-03-10",
        "score_ors": "20",
        "score_srs": "30",
    }
    recorded = api.client.post("/ui/clients/so-1/sessions", data=form, follow_redirects=False)
    assert recorded.status_code == 303 and recorded.headers["location"].endswith("/ui/login")
    assert api.client.get("/v1/clients/so-1", headers=headers).json()["sessions"] == 1  # nothing recorded
    api.client.cookies.clear()

    _sign_in(api, headers)  # signing in again works, and is a new session
    assert api.client.get("/ui/clients", follow_redirects=False).status_code == 200
    assert api.client.cookies.get("drk_ui") != copied
    api.client.cookies.clear()


def test_a_score_key_that_is_not_valid_unicode_is_422(api):
    """An instrument key with a lone surrogate was a 500 on both session routes."""
    headers = api.new_clinic()
    session = '{"session_number": 1, "session_date": "2025-03-03", "scores": {"\\udfff": 1}}'
    for path, body in (("/v1/clients/sk/sessions", session), ("/v1/score", f'{{"sessions": [{session}]}}')):
        response = _raw(api, "POST", path, body, headers)
        assert response.status_code == 422 and "valid Unicode" in response.text, (path, response.status_code)
    assert api.client.get("/v1/clients/sk", headers=headers).status_code == 404
