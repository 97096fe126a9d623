"""Idempotent retries: the payload digest covers every field, so a changed retry is a conflict, not a replay."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from dropout_risk.serving.schemas import SessionIn
from dropout_risk.serving.store import payload_hash

BASE = SessionIn(session_number=2, session_date=dt.date(2025, 3, 10), scores={"ors": 16.0, "srs": 29.5})
ONE_FIELD_CHANGED = {
    "session_number": {"session_number": 3},
    "session_date": {"session_date": dt.date(2025, 3, 11)},
    "a score": {"scores": {"ors": 16.5, "srs": 29.5}},
    "the other score": {"scores": {"ors": 16.0, "srs": 30.0}},
    "an instrument added": {"scores": {"ors": 16.0, "srs": 29.5, "phq9": 12.0}},
    "an instrument left out": {"scores": {"ors": 16.0}},
    "missed_since_last 0": {"missed_since_last": 0},
    "missed_since_last 2": {"missed_since_last": 2},
}


@pytest.mark.parametrize("change", ONE_FIELD_CHANGED.values(), ids=ONE_FIELD_CHANGED.keys())
def test_the_hash_changes_when_any_one_field_changes(change):
    assert payload_hash(BASE.model_copy(update=change)) != payload_hash(BASE)


def test_missed_since_last_none_zero_and_two_all_hash_apart():
    digests = [payload_hash(BASE.model_copy(update={"missed_since_last": m})) for m in (None, 0, 2)]
    assert len(set(digests)) == 3
    for a, b in itertools.combinations(ONE_FIELD_CHANGED.values(), 2):
        assert payload_hash(BASE.model_copy(update=a)) != payload_hash(BASE.model_copy(update=b))


def test_equal_payloads_hash_equal():
    reordered = BASE.model_copy(update={"scores": {"srs": 29.5, "ors": 16}})
    assert payload_hash(reordered) == payload_hash(BASE)
    assert payload_hash(SessionIn.model_validate(BASE.model_dump())) == payload_hash(BASE)


S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}}


@pytest.mark.parametrize(("stored", "retried"), [(None, 0), (None, 2), (0, 2), (2, 0), (2, None), (0, None)])
def test_a_retry_differing_only_in_missed_since_last_is_a_conflict(api, stored, retried):
    headers = api.new_clinic()
    first = {**S2, "missed_since_last": stored}
    assert api.client.post("/v1/clients/m/sessions", json=S1, headers=headers).status_code == 201
    assert api.client.post("/v1/clients/m/sessions", json=first, headers=headers).status_code == 201
    before = api.client.get("/v1/clients/m/risk", headers=headers).json()

    changed = api.client.post("/v1/clients/m/sessions", json={**S2, "missed_since_last": retried}, headers=headers)
    assert changed.status_code == 409
    assert api.client.get("/v1/clients/m/risk", headers=headers).json() == before
    # The stored session is still the first payload: retrying that one is the idempotent 200.
    again = api.client.post("/v1/clients/m/sessions", json=first, headers=headers)
    assert again.status_code == 200 and again.json()["session"]["missed_since_last"] == stored
