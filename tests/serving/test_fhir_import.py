"""POST /fhir/r4: Bundles of Observations stored by the same rules as /v1, entry by entry (issue 15)."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import select

from dropout_risk.serving.tables import Client, Clinic, SessionRecord
from tests.support import fhir

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def round_trip(resource: dict[str, Any]) -> Any:
    """The resource through its R4B model and back: it validates, and nothing is lost."""
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    again = get_fhir_model_class(resource["resourceType"]).model_validate(json.loads(model.model_dump_json()))
    assert again == model
    return model


def stored(api, clinic: str) -> dict[tuple[str, int], tuple]:
    """Every stored session of a clinic with the risk served when it was recorded."""
    with api.app.state.sessions() as db:
        rows = db.execute(
            select(
                Client.external_id,
                SessionRecord.session_number,
                SessionRecord.session_date,
                SessionRecord.missed_since_last,
                SessionRecord.scores,
                SessionRecord.payload_hash,
                SessionRecord.risk,
            )
            .join(Client, Client.id == SessionRecord.client_pk)
            .join(Clinic, Clinic.id == Client.clinic_id)
            .where(Clinic.name == clinic)
        ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def post(api, headers: dict[str, str], body: dict[str, Any]):
    return api.client.post("/fhir/r4", content=json.dumps(body), headers={**headers, **FHIR_JSON})


def test_a_bundle_stores_exactly_what_v1_stores_and_a_resent_bundle_changes_nothing(api):
    data = fhir.sessions(12, 8, seed=3)
    v1_clinic, v1 = api.add_clinic()
    for client, payloads in data.items():
        for payload in payloads:
            assert api.client.post(f"/v1/clients/{client}/sessions", json=payload, headers=v1).status_code == 201
    items = fhir.resources(data)
    for kind in ("batch", "transaction", "collection"):
        bundle = fhir.bundle(items, kind)
        round_trip(bundle)
        clinic, headers = api.add_clinic()
        answer = post(api, headers, bundle)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/fhir+json")
        body = round_trip(answer.json())
        assert stored(api, clinic) == stored(api, v1_clinic)
        if kind != "collection":
            statuses = [e.response.status for e in body.entry]
            assert len(statuses) == len(items) and statuses.count("201 Created") == sum(
                len(p["scores"]) for ps in data.values() for p in ps
            )
        again = post(api, headers, bundle)
        assert again.status_code == 200
        assert stored(api, clinic) == stored(api, v1_clinic)
        if kind != "collection":
            assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}


def _issues(answer_entry: dict[str, Any]) -> list[dict[str, Any]]:
    return answer_entry["response"].get("outcome", {}).get("issue", [])


def bad_items(client: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, tuple[str, str, str]]]:
    """Two good sessions to store first; then a good session of another client and six bad entries.

    Returns both lists and the expected (status, expression, rule) of the bad entries by index.
    """
    first = fhir.resources({client: fhir.sessions(1, 2, seed=5)["c0000"]})
    good = fhir.resources({f"{client}-2": fhir.sessions(1, 1, seed=6)["c0000"]})
    date = "2026-03-02"
    out_of_range = fhir.observation(client, "ors", 41.5, date, None)  # ORS is 0-40
    no_subject = fhir.observation(client, "srs", 30.0, date, None)
    del no_subject["subject"]
    not_a_number = fhir.observation(client, "srs", 30.0, date, None)
    not_a_number["valueQuantity"] = {"value": "thirty"}
    unknown_code = fhir.observation(client, "srs", 30.0, date, None)
    unknown_code["code"] = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}  # heart rate
    no_value = fhir.observation("other-client", "ors", 20.0, date, None)
    del no_value["valueQuantity"]
    stored_score = first[0]["valueQuantity"]["value"]
    conflicting = fhir.observation(
        client, "ors", 39.0 if stored_score != 39.0 else 1.0, first[0]["effectiveDateTime"], None
    )
    second = good + [out_of_range, no_subject, not_a_number, unknown_code, no_value, conflicting]
    n = len(good)
    unprocessable = "422 Unprocessable Entity"
    expected = {
        n: (unprocessable, f"Bundle.entry[{n}].resource.valueQuantity.value", "must be within 0-40"),
        n + 1: (unprocessable, f"Bundle.entry[{n + 1}].resource.subject", "must reference the client"),
        n + 2: (unprocessable, f"Bundle.entry[{n + 2}].resource.valueQuantity.value", "Decimal"),
        n + 3: ("200 OK", f"Bundle.entry[{n + 3}].resource.code", "no instrument declares this code"),
        n + 4: (unprocessable, f"Bundle.entry[{n + 4}].resource.value[x]", "valueQuantity.value or valueInteger"),
        n + 5: ("409 Conflict", f"Bundle.entry[{n + 5}].resource", "a different session is already stored"),
    }
    return first, second, expected


def send_bad_items(api, kind: str, client: str):
    """A fresh clinic stores ``bad_items``' first sessions, then is sent the second Bundle of that kind."""
    clinic, headers = api.add_clinic()
    first, items, expected = bad_items(client)
    assert post(api, headers, fhir.bundle(first, kind)).status_code == 200
    return clinic, headers, items, expected, post(api, headers, fhir.bundle(items, kind))


def test_a_batch_stores_the_good_entries_and_names_each_bad_one_without_its_value(api):
    clinic, headers, items, expected, answer = send_bad_items(api, "batch", "batch-client")
    assert answer.status_code == 200, answer.text
    round_trip(answer.json())
    entries = answer.json()["entry"]
    for index, (status, where, rule) in expected.items():
        issues = _issues(entries[index])
        assert entries[index]["response"]["status"] == status, (index, entries[index])
        assert any(where in i["expression"][0] and rule in i["diagnostics"] for i in issues), (index, issues)
    text = answer.text
    for value in ("41.5", "thirty", "39.0", "batch-client", "other-client"):
        assert value not in text
    assert entries[0]["response"]["status"] == "201 Created"
    before = stored(api, clinic)
    assert sorted(before) == [("batch-client", 1), ("batch-client", 2), ("batch-client-2", 1)]
    post(api, headers, fhir.bundle(items, "batch"))  # the same again: the conflict changed nothing
    assert stored(api, clinic) == before


def test_a_transaction_with_a_bad_entry_stores_nothing_and_names_it(api):
    clinic, _, _, expected, answer = send_bad_items(api, "transaction", "tx-client")
    assert answer.status_code == 422, answer.text
    outcome = round_trip(answer.json())
    assert outcome.get_resource_type() == "OperationOutcome"
    expressions = [i["expression"][0] for i in answer.json()["issue"]]
    assert all(i["severity"] == "error" for i in answer.json()["issue"])
    for index, (status, where, _rule) in expected.items():
        assert (where in expressions) == (status != "200 OK"), (index, expressions)
    assert sorted(stored(api, clinic)) == [("tx-client", 1), ("tx-client", 2)]  # the first transaction only


def test_a_collection_answers_an_operation_outcome_per_entry(api):
    clinic, _, items, _, answer = send_bad_items(api, "collection", "coll-client")
    assert answer.status_code == 200
    round_trip(answer.json())
    issues = answer.json()["issue"]
    for index in range(len(items)):
        assert any(i["expression"][0].startswith(f"Bundle.entry[{index}].resource") for i in issues), index
    observations = sum(r["resourceType"] == "Observation" for r in items[:-6])
    assert sum(i["diagnostics"] == "session stored" for i in issues) == observations
    assert sorted(stored(api, clinic)) == [("coll-client", 1), ("coll-client", 2), ("coll-client-2", 1)]


def test_a_questionnaire_response_total_score_and_encounter_dates(api):
    clinic, headers = api.add_clinic()
    encounter = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": "2026-02-02T10:00:00Z"},
    }
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/qr-client"},
        "encounter": {"reference": "Encounter/enc-1"},
        "item": [{"linkId": "44261-6", "answer": [{"valueInteger": 14}]}],
    }
    ors = fhir.observation("qr-client", "ors", 22.0, "2026-02-02", "enc-1")
    del ors["effectiveDateTime"]
    answer = post(api, headers, fhir.bundle([encounter, response, ors], "batch"))
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["200 OK", "201 Created", "201 Created"]
    [(key, row)] = stored(api, clinic).items()
    assert key == ("qr-client", 1) and str(row[0]) == "2026-02-02" and row[2] == {"phq9": 14.0, "ors": 22.0}


def test_not_a_bundle_is_a_400_operation_outcome(api):
    _, headers = api.add_clinic()
    for body, where in (
        ({"resourceType": "Observation"}, "resourceType"),
        ({"resourceType": "Bundle", "type": "searchset"}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": [{"fullUrl": 12}]}, "Bundle.entry[0].fullUrl"),
    ):
        answer = post(api, headers, body)
        assert answer.status_code == 400 and where in answer.json()["issue"][0]["diagnostics"], answer.text
    assert api.client.post("/fhir/r4", json={"resourceType": "Bundle"}).status_code == 401
