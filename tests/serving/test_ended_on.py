"""Ended episodes carry the day they ended (issue 13): PUT records it, GET and the export show it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select

from dropout_risk.serving.db import transaction
from dropout_risk.serving.export import export_contract
from dropout_risk.serving.recalibration import store
from dropout_risk.serving.tables import Clinic, Recalibration

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}}


def _put(api, headers, client_id, body):
    return api.client.put(f"/v1/clients/{client_id}", json=body, headers=headers)


def test_closing_an_episode_records_the_day_given_or_today(api, tmp_path):
    name, headers = api.add_clinic()
    for client_id in ("given", "today", "open"):
        for session in (S1, S2):
            assert (
                api.client.post(f"/v1/clients/{client_id}/sessions", json=session, headers=headers).status_code == 201
            )
    given = _put(api, headers, "given", {"status": "dropout", "ended_on": "2025-03-20"})
    assert given.status_code == 200 and given.json()["ended_on"] == "2025-03-20"
    # Another PUT of the same status (a covariate) keeps the recorded day.
    assert _put(api, headers, "given", {"age": 30}).json()["ended_on"] == "2025-03-20"
    assert _put(api, headers, "given", {"status": "dropout"}).json()["ended_on"] == "2025-03-20"
    today = _put(api, headers, "today", {"status": "completed"}).json()
    assert today["ended_on"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert api.client.get("/v1/clients/open", headers=headers).json()["ended_on"] is None

    with api.app.state.sessions() as db:
        paths = export_contract(db, tmp_path, clinic=name)
    episodes = pd.read_csv(paths["episodes"], dtype=str, keep_default_na=False).set_index("client_id")
    assert episodes.loc["given", "ended_on"] == "2025-03-20"
    assert episodes.loc["open", "ended_on"] == ""

    # Reopened: the day goes with the ended status.
    assert _put(api, headers, "today", {"status": "ongoing"}).json()["ended_on"] is None


def test_ended_on_rules_name_the_field_not_the_value(api):
    headers = api.new_clinic()
    assert (
        api.client.post("/v1/clients/c/sessions", json=S2 | {"session_number": 1}, headers=headers).status_code == 201
    )
    cases = [
        ({"status": "ongoing", "ended_on": "2025-04-01"}, "only for an ended episode"),
        ({"status": "dropout", "ended_on": "2025-03-01"}, "before the client's last recorded session"),
        ({"status": "dropout", "ended_on": "01/04/2025"}, "date"),
    ]
    for body, rule in cases:
        response = _put(api, headers, "c", body)
        assert response.status_code == 422, body
        problem = response.json()["detail"][0]
        assert problem["loc"][-1] == "ended_on" and rule in problem["msg"]
        assert "2025" not in problem["msg"]


def test_closing_an_episode_keeps_the_risk_served_at_its_last_session(api, champion):
    """Status and ended_on are not model inputs: closing re-scores nothing; a covariate change re-scores."""
    name, headers = api.add_clinic()
    served = [
        api.client.post("/v1/clients/c/sessions", json=s, headers=headers).json()["risk"]["probability"]
        for s in (S1, S2)
    ]
    with transaction(api.app.state.sessions) as db:  # what scoring gives now differs from what was served
        clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == name))
        row = Recalibration(
            clinic_id=clinic_id,
            model_version=champion.version,
            method="intercept",
            intercept=0.7,
            slope=1.0,
            episodes=100,
            evaluation={},
            created_by="test",
            reason="test",
        )
        store(db, row)
    closed = _put(api, headers, "c", {"status": "dropout", "ended_on": "2025-03-20"}).json()
    assert closed["probability"] == served[-1]
    rescored = _put(api, headers, "c", {"age": 30}).json()
    assert rescored["probability"] > served[-1]
