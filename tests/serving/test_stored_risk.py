"""A risk stored with a session is JSON with fixed keys: rows written by earlier versions read back unchanged."""

from __future__ import annotations

from sqlalchemy import select, update

from dropout_risk.serving.db import transaction
from dropout_risk.serving.tables import Client, SessionRecord

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}

# A stored risk exactly as the service wrote it before the risk was typed (a dict built key by key).
LEGACY_RISK = {
    "probability": 0.3141,
    "band": "moderate",
    "model_version": "7",
    "landmark": 1,
    "session_number": 1,
    "factors": [
        {"feature": "srs_current", "contribution": 0.25, "effect": "raises", "text": "alliance score (SRS) is 33"},
        {"feature": "ors_current", "contribution": -0.125, "effect": "lowers", "text": "ORS is 14.5"},
    ],
    "flags": [{"flag": "alliance_below_cutoff", "text": "alliance below cutoff"}],
    "suggestions": [{"flag": "alliance_below_cutoff", "text": "Ask for feedback.", "source": "PCOMS"}],
    "missing_inputs": [],
}


def _stored_session(client_id: str):
    return (
        select(SessionRecord.id)
        .join(Client, Client.id == SessionRecord.client_pk)
        .where(Client.external_id == client_id, SessionRecord.session_number == 1)
        .scalar_subquery()
    )


def test_the_stored_risk_is_the_returned_one_and_an_earlier_versions_row_reads_back_unchanged(api):
    headers = api.new_clinic()
    first = api.client.post("/v1/clients/legacy-row/sessions", json=S1, headers=headers)
    assert first.status_code == 201
    with transaction(api.app.state.sessions) as db:
        stored = db.scalar(select(SessionRecord.risk).where(SessionRecord.id == _stored_session("legacy-row")))
        assert stored == first.json()["risk"]
        db.execute(
            update(SessionRecord).where(SessionRecord.id == _stored_session("legacy-row")).values(risk=LEGACY_RISK)
        )
    again = api.client.post("/v1/clients/legacy-row/sessions", json=S1, headers=headers)  # a retry: the stored risk
    assert again.status_code == 200
    # Read back unchanged; "changes" came later (issue 16): an earlier row has none to show.
    assert again.json()["risk"] == {**LEGACY_RISK, "changes": [], "recalibration": None}  # keys added since: defaults
