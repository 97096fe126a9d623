"""The /v1 API against SQLite and PostgreSQL: record, retry, conflict, read, list, score."""

from __future__ import annotations

import os

import pytest

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}, "missed_since_last": 1}
S3 = {"session_number": 3, "session_date": "2025-03-17", "scores": {"ors": 18.0, "srs": 36.0}}


def _post(api, headers, client_id, body):
    return api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers)


def test_record_returns_the_stored_session_and_an_explained_risk(api, champion):
    headers = api.new_clinic()
    response = _post(api, headers, "a-1", S1)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_id"] == "a-1"
    assert body["session"] == {**S1, "missed_since_last": None}
    risk = body["risk"]
    assert 0 < risk["probability"] < 1
    assert risk["band"] in ("low", "moderate", "high")
    assert risk["model_version"] == champion.version and risk["landmark"] == 1 and risk["session_number"] == 1
    assert 3 <= len(risk["factors"]) <= 5
    assert all(f["effect"] in ("raises", "lowers") and f["text"] for f in risk["factors"])
    assert {f["flag"] for f in risk["flags"]} >= {"alliance_below_cutoff"}  # SRS 33 < 36
    suggestion = next(s for s in risk["suggestions"] if s["flag"] == "alliance_below_cutoff")
    assert "feedback" in suggestion["text"] and "PCOMS" in suggestion["source"]
    assert risk["missing_inputs"] == []


def test_retry_is_idempotent_and_a_different_payload_conflicts(api):
    headers = api.new_clinic()
    first = _post(api, headers, "b", S1)
    again = _post(api, headers, "b", S1)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    changed = _post(api, headers, "b", {**S1, "scores": {"ors": 15.0, "srs": 33.0}})
    assert changed.status_code == 409
    assert "15" not in changed.text
    history = api.client.get("/v1/clients/b/risk", headers=headers).json()["history"]
    assert len(history) == 1


@pytest.mark.parametrize(
    ("body", "loc", "msg"),
    [
        ({**S2, "session_number": 3}, ["body", "session_number"], "next session for this client must be number 2"),
        ({**S2, "session_date": "2025-03-01"}, ["body", "session_date"], "earlier than this client's previous"),
        ({**S2, "scores": {"ors": 40.5}}, ["body", "scores", "ors"], "must be within 0-40"),
        ({**S2, "scores": {"bdi": 12}}, ["body", "scores", "bdi"], "unknown instrument"),
        ({**S2, "scores": {"ors": "lots"}}, ["body", "scores", "ors"], "valid number"),
        ({**S2, "session_date": "10/03/2025"}, ["body", "session_date"], "valid date"),
        ({**S2, "missed_since_last": -1}, ["body", "missed_since_last"], "greater than or equal to 0"),
    ],
)
def test_invalid_sessions_are_422_naming_the_field_without_the_value(api, body, loc, msg):
    headers = api.new_clinic()
    assert _post(api, headers, "c", S1).status_code == 201
    response = _post(api, headers, "c", body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and msg in d["msg"] for d in detail), detail
    for secret in ("40.5", "lots", "10/03/2025", "2025-03-01"):
        assert secret not in response.text
    assert "input" not in response.text
    assert len(api.client.get("/v1/clients/c/risk", headers=headers).json()["history"]) == 1  # nothing stored


def test_bad_client_id_and_bad_first_session(api):
    headers = api.new_clinic()
    assert _post(api, headers, "no spaces allowed", S1).status_code in (404, 422)
    response = _post(api, headers, "fresh", S2)  # a new client must start at session 1
    assert response.status_code == 422
    assert api.client.get("/v1/clients/fresh", headers=headers).status_code == 404  # not created


def test_unused_instruments_are_stored_but_do_not_move_the_risk(api):
    headers = api.new_clinic()
    plain = _post(api, headers, "d1", S1).json()
    extra = _post(api, headers, "d2", {**S1, "scores": {**S1["scores"], "phq9": 20}}).json()
    assert extra["session"]["scores"]["phq9"] == 20
    assert extra["risk"]["probability"] == plain["risk"]["probability"]


def test_a_missing_model_instrument_is_scored_as_missing_and_said(api):
    headers = api.new_clinic()
    _post(api, headers, "e", S1)
    response = _post(api, headers, "e", {**S2, "scores": {"ors": 16.0}})
    assert response.status_code == 201
    assert response.json()["risk"]["missing_inputs"] == ["srs"]


def test_risk_history_and_client_update(api, champion):
    headers = api.new_clinic()
    recorded = [_post(api, headers, "f", s).json()["risk"] for s in (S1, S2, S3)]
    risk = api.client.get("/v1/clients/f/risk", headers=headers).json()
    assert risk["status"] == "ongoing"
    assert risk["risk"]["probability"] == pytest.approx(recorded[-1]["probability"], abs=1e-12)
    assert [h["session_number"] for h in risk["history"]] == [1, 2, 3]
    for item, served in zip(risk["history"], recorded, strict=True):
        assert item["probability"] == pytest.approx(served["probability"], abs=1e-12)

    updated = api.client.put("/v1/clients/f", json={"age": 19, "gender": "F", "therapist_id": "t7"}, headers=headers)
    assert updated.status_code == 200
    body = updated.json()
    assert body["covariates"] == {"age": 19, "gender": "F", "therapist_id": "t7"} and body["sessions"] == 3
    assert body["probability"] != recorded[-1]["probability"]  # age is a predictor: the risk was refreshed
    ended = api.client.put("/v1/clients/f", json={"status": "dropout"}, headers=headers).json()
    assert ended["status"] == "dropout" and ended["covariates"]["age"] == 19
    assert api.client.put("/v1/clients/f", json={"status": "gone"}, headers=headers).status_code == 422
    assert api.client.put("/v1/clients/f", json={"age": 300}, headers=headers).status_code == 422


def test_caseload_is_ordered_by_risk_and_paginated(api):
    headers = api.new_clinic()
    for i, srs in enumerate((38.0, 24.0, 31.0, 40.0)):
        _post(api, headers, f"g{i}", {**S1, "scores": {"ors": 20.0, "srs": srs}})
    api.client.put("/v1/clients/g-new", json={"age": 40}, headers=headers)  # no sessions: no risk, listed last
    page1 = api.client.get("/v1/clients?order=risk&page_size=3", headers=headers).json()
    page2 = api.client.get("/v1/clients?order=risk&page_size=3&page=2", headers=headers).json()
    assert page1["total"] == page2["total"] == 5
    items = page1["items"] + page2["items"]
    risks = [i["probability"] for i in items if i["probability"] is not None]
    assert risks == sorted(risks, reverse=True) and len(risks) == 4
    assert items[-1]["client_id"] == "g-new" and items[-1]["probability"] is None
    assert items[0]["client_id"] == "g1"  # the lowest alliance
    assert api.client.get("/v1/clients?order=alphabet", headers=headers).status_code == 422


def test_stateless_score_matches_recorded_risk_and_stores_nothing(api):
    headers = api.new_clinic()
    recorded = [_post(api, headers, "h", s).json()["risk"] for s in (S1, S2, S3)]
    response = api.client.post("/v1/score", json={"sessions": [S1, S2, S3]}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["risk"]["probability"] == pytest.approx(recorded[-1]["probability"], abs=1e-12)
    assert [h["probability"] for h in body["history"]] == pytest.approx([r["probability"] for r in recorded])
    assert api.client.get("/v1/clients", headers=headers).json()["total"] == 1
    bad = api.client.post("/v1/score", json={"sessions": [S1, S3]}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "sessions", 1, "session_number"]


def test_model_info(api, champion):
    headers = api.new_clinic()
    info = api.client.get("/v1/model", headers=headers).json()
    assert info["name"] == "dropout-risk" and info["version"] == champion.version and info["alias"] == "champion"
    assert info["kind"] in ("logistic", "lightgbm") and info["trained_at"]
    assert 0.5 < info["metrics"]["roc_auc"] < 1 and "ece" in info["metrics"]
    assert info["instruments"] == ["ors", "srs"]


def test_health_readiness_metrics_need_no_key(api, champion):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    headers = api.new_clinic()
    _post(api, headers, "m", S1)
    metrics = api.client.get("/metrics").text
    worker = f'worker="{os.getpid()}"'  # the app runs in this process: its pid labels every series
    assert (
        f'dropout_risk_requests_total{{method="POST",route="/v1/clients/{{client_id}}/sessions",status="201",{worker}}}'
        in metrics
    )
    assert f'dropout_risk_model_version{{name="dropout-risk",version="{champion.version}",{worker}}} 1.0' in metrics
    assert "dropout_risk_risks_served_count" in metrics
    assert '"m"' not in metrics and "/v1/clients/m/" not in metrics
