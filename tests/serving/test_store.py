"""The write path's store (serving/store.py): what a recorded session leaves behind, and reading it back.

test_api.py and test_payload_hash.py check the answers; these check the rows the other readers rely on: the
caseload's current risk, the episode's end, the columns monitoring groups by, the served risks FHIR returns,
and the digest an earlier version stored for a retry to match.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select

from dropout_risk.serving.db import transaction
from dropout_risk.serving.risk import Risk
from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.store import (
    find_client,
    insert_session,
    payload_hash,
    served_risks,
    session_counts,
    stored_sessions,
)
from dropout_risk.serving.tables import Clinic, SessionRecord

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}, "missed_since_last": 1}
S3 = {"session_number": 3, "session_date": "2025-03-17", "scores": {"ors": 18.0, "srs": 35.0}}


def _clinic(api) -> tuple[int, dict[str, str]]:
    name, headers = api.add_clinic()
    with transaction(api.app.state.sessions) as db:
        return db.scalar(select(Clinic.id).where(Clinic.name == name)), headers


def _record(api, headers, client_id: str, *sessions: dict) -> list[dict]:
    risks = []
    for body in sessions:
        response = api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        risks.append(response.json()["risk"])
    return risks


def test_the_payload_digest_of_an_earlier_version_still_matches():
    # The SHA-256 of the canonical JSON (keys sorted, scores as floats) stored by earlier versions: a retry
    # of a session stored before an upgrade must still be the idempotent 200, not a 409.
    canonical = '{"missed_since_last": 1, "scores": {"ors": 16.0, "srs": 29.5}, "session_date": "2025-03-10", '
    canonical += '"session_number": 2}'
    session = SessionIn(
        session_number=2, session_date=dt.date(2025, 3, 10), scores={"srs": 29.5, "ors": 16}, missed_since_last=1
    )
    assert payload_hash(session) == "7600b00071220005a9782d5d53271384f0b3ab73a7b3f350297583c463bc8adc"
    assert hashlib.sha256(canonical.encode()).hexdigest() == payload_hash(session)


def test_served_risks_are_the_risks_returned_in_session_order_with_their_basis(api):
    clinic, headers = _clinic(api)
    returned = _record(api, headers, "served", S1, S2)
    with transaction(api.app.state.sessions) as db:
        client = find_client(db, clinic, "served")
        assert client is not None
        served = served_risks(db, client.id)
        ids = db.scalars(select(SessionRecord.id).where(SessionRecord.client_pk == client.id)).all()
        # Sessions stored from FHIR resources keep their references (RiskAssessment.basis), and the clinic's
        # recalibration; stored out of order here, read back in session order.
        for number, basis in ((4, None), (3, ["Observation/ors-3", "Observation/srs-3"])):
            session = SessionIn.model_validate(
                {**S3, "session_number": number, "session_date": f"2025-03-{14 + number}"}
            )
            risk = Risk.from_stored({**returned[1], "session_number": number, "recalibration": number})
            insert_session(db, client.id, session, payload_hash(session), risk, basis)
        later = served_risks(db, client.id)
        numbers = [s.session_number for s in stored_sessions(db, client.id)]
        recalibrations = db.execute(
            select(SessionRecord.session_number, SessionRecord.recalibration_id).where(
                SessionRecord.client_pk == client.id, SessionRecord.session_number > 2
            )
        ).all()
    assert [(r.session_number, r.session_date) for r in served] == [(1, dt.date(2025, 3, 3)), (2, dt.date(2025, 3, 10))]
    assert sorted(r.id for r in served) == sorted(ids) and served[0].id != served[1].id
    assert [r.risk.stored() for r in served] == returned
    assert [r.basis for r in served] == [(), ()]
    assert [(r.session_number, r.basis) for r in later[2:]] == [
        (3, ("Observation/ors-3", "Observation/srs-3")),
        (4, ()),
    ]
    assert numbers == [1, 2, 3, 4] and [r.session_number for r in later] == [1, 2, 3, 4]
    assert sorted(recalibrations) == [(3, 3), (4, 4)]


def test_each_session_row_records_the_risk_monitoring_groups_by(api):
    clinic, headers = _clinic(api)
    returned = _record(api, headers, "monitored", S1, S2)
    with transaction(api.app.state.sessions) as db:
        client = find_client(db, clinic, "monitored")
        assert client is not None
        columns = (SessionRecord.probability, SessionRecord.landmark, SessionRecord.model_version)
        query = select(*columns, SessionRecord.recalibration_id, SessionRecord.basis)
        rows = db.execute(query.where(SessionRecord.client_pk == client.id).order_by(SessionRecord.session_number))
        stored = [tuple(row) for row in rows]
        sessions = stored_sessions(db, client.id)
    assert stored == [(r["probability"], r["landmark"], r["model_version"], None, None) for r in returned]
    assert all(r["probability"] > 0 and r["model_version"] for r in returned)  # the check can tell a NULL
    assert [(s.session_number, s.missed_since_last) for s in sessions] == [(1, None), (2, 1)]


def test_clients_are_found_within_their_clinic_and_sessions_counted_per_client(api):
    clinic_a, headers_a = _clinic(api)
    clinic_b, headers_b = _clinic(api)
    _record(api, headers_a, "shared-id", S1)
    _record(api, headers_a, "other", S1, S2, S3)
    _record(api, headers_b, "only-b", S1, S2)
    with transaction(api.app.state.sessions) as db:
        a = find_client(db, clinic_a, "shared-id")
        other = find_client(db, clinic_a, "other")
        assert a is not None and other is not None
        assert (a.clinic_id, a.external_id, other.external_id) == (clinic_a, "shared-id", "other")
        assert find_client(db, clinic_b, "shared-id") is None  # another clinic's client is not found
        b = find_client(db, clinic_b, "only-b")
        assert b is not None
        assert session_counts(db, [a.id, other.id, b.id]) == {a.id: 1, other.id: 3, b.id: 2}
        assert session_counts(db, []) == {}


def test_the_caseload_row_carries_the_latest_risk_and_an_ended_episode_keeps_its_day(api):
    _, headers = _clinic(api)
    returned = _record(api, headers, "latest", S1, S2)[-1]
    listed = api.client.get("/v1/clients", headers=headers).json()["items"]
    assert listed == [
        {
            "client_id": "latest",
            "status": "ongoing",
            "probability": returned["probability"],
            "band": returned["band"],
            "model_version": returned["model_version"],
            "session_number": 2,
            "last_session_date": "2025-03-10",
        }
    ]
    ended = api.client.put("/v1/clients/latest", json={"status": "dropout", "ended_on": "2025-03-20"}, headers=headers)
    assert ended.status_code == 200 and ended.json()["ended_on"] == "2025-03-20"
    # A later update of the same ended episode keeps the day it ended (not today's date).
    again = api.client.put("/v1/clients/latest", json={"status": "dropout", "age": 41}, headers=headers)
    assert again.status_code == 200 and again.json()["ended_on"] == "2025-03-20"
    assert api.client.get("/v1/clients/latest", headers=headers).json()["ended_on"] == "2025-03-20"
