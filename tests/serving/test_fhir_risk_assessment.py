"""GET /fhir/r4/RiskAssessment: each served risk as an R4 RiskAssessment, behind the clinic's key (issue 15)."""

from __future__ import annotations

import json

from fhir.resources.R4B import get_fhir_model_class

from dropout_risk.serving.fhir.risk_assessment import RISK_PROBABILITY
from tests.support import fhir

RiskAssessment = get_fhir_model_class("RiskAssessment")
Bundle = get_fhir_model_class("Bundle")
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def test_each_served_risk_is_a_risk_assessment_and_another_clinic_sees_none(api):
    _, headers = api.add_clinic()
    [(client, payloads)] = fhir.sessions(1, 4, seed=21, prefix="ra-").items()
    served = []
    for payload in payloads:
        answer = api.client.post(f"/v1/clients/{client}/sessions", json=payload, headers=headers)
        assert answer.status_code == 201
        served.append(answer.json()["risk"])
    for query in (f"subject={client}", f"subject=Patient/{client}&_format=json", f"subject={client}&_format=json"):
        answer = api.client.get(f"/fhir/r4/RiskAssessment?{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/fhir+json")
        assert answer.headers["cache-control"] == "no-store"
        bundle = Bundle.model_validate(answer.json())
        assert bundle.type == "searchset" and bundle.total == len(payloads)
        for entry, risk, payload in zip(answer.json()["entry"], served, payloads, strict=True):
            resource = RiskAssessment.model_validate(entry["resource"])
            assert resource.status == "final" and resource.subject.reference == f"Patient/{client}"
            assert str(resource.occurrenceDateTime) == payload["session_date"]
            assert risk["model_version"] in resource.method.text and "dropout-risk" in resource.method.text
            [prediction] = resource.prediction
            assert float(prediction.probabilityDecimal) == risk["probability"]
            [coding] = prediction.qualitativeRisk.coding
            assert (coding.system, coding.code) == (RISK_PROBABILITY, risk["band"])
            assert "premature termination" in prediction.outcome.text
            notes = [n.text for n in resource.note or []]
            assert all(any(f["text"] in n for n in notes) for f in risk["factors"])
            assert all(any(f["text"] in n for n in notes) for f in risk["flags"])
            assert client not in resource.id
    other = api.new_clinic()
    answer = api.client.get(f"/fhir/r4/RiskAssessment?subject={client}", headers=other)
    assert answer.status_code == 200 and Bundle.model_validate(answer.json()).total == 0
    assert "entry" not in answer.json()
    assert api.client.get(f"/fhir/r4/RiskAssessment?subject={client}").status_code == 401
    assert (
        api.client.get(
            f"/fhir/r4/RiskAssessment?subject={client}", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )


def test_every_searchset_full_url_resolves_to_its_resource_for_its_clinic_only(api):
    """FHIR's read interaction: a client follows an entry's fullUrl; another clinic's is 404, like none."""
    _, headers = api.add_clinic()
    [(client, payloads)] = fhir.sessions(1, 3, seed=23, prefix="read-").items()
    for payload in payloads:
        assert api.client.post(f"/v1/clients/{client}/sessions", json=payload, headers=headers).status_code == 201
    entries = api.client.get(f"/fhir/r4/RiskAssessment?subject={client}", headers=headers).json()["entry"]
    other = api.new_clinic()
    for entry in entries:
        path = entry["fullUrl"].removeprefix("http://testserver")
        answer = api.client.get(path, headers=headers)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/fhir+json")
        assert answer.json() == entry["resource"]
        assert api.client.get(path).status_code == 401
        hidden = api.client.get(path, headers=other)
        assert hidden.status_code == 404 and client not in hidden.text
        absent = api.client.get("/fhir/r4/RiskAssessment/session-999999999", headers=other)
        assert (hidden.text, hidden.headers["content-type"]) == (absent.text, absent.headers["content-type"])
        outcome = get_fhir_model_class("OperationOutcome").model_validate(hidden.json())
        assert outcome.issue[0].code == "not-found"
    for unknown in ("session-999999999", "session-0", "session-1x", "x", "session-" + "9" * 19):
        answer = api.client.get(f"/fhir/r4/RiskAssessment/{unknown}", headers=headers)
        assert answer.status_code == 404, unknown
    for not_an_id in ("session_1", "a" * 65, "session-1;drop"):  # outside FHIR's id syntax: a request error
        assert api.client.get(f"/fhir/r4/RiskAssessment/{not_an_id}", headers=headers).status_code == 422


def test_a_search_without_a_subject_or_for_xml_is_a_400_operation_outcome(api):
    headers = api.new_clinic()
    for query, where in (("", "subject"), ("subject=Group/x", "subject"), ("subject=a&_format=xml", "_format")):
        answer = api.client.get(f"/fhir/r4/RiskAssessment?{query}", headers=headers)
        assert answer.status_code == 400, answer.text
        outcome = get_fhir_model_class("OperationOutcome").model_validate(answer.json())
        assert outcome.issue[0].expression == [where]


def test_basis_points_at_the_resources_a_fhir_session_came_from_and_v1_sessions_have_none(api):
    _, headers = api.add_clinic()
    [(client, payloads)] = fhir.sessions(1, 3, seed=22, prefix="basis-").items()
    items, expected = [], []
    for payload in payloads:
        number = payload["session_number"]
        refs = []
        for instrument, score in payload["scores"].items():
            if instrument == "phq9":
                continue
            observation = fhir.observation(client, instrument, score, payload["session_date"], f"enc-{number}")
            observation["id"] = f"obs-{number}-{instrument}"
            items.append(observation)
            refs.append(f"Observation/{observation['id']}")
        if number == 2:  # a total score from a questionnaire, in the same encounter
            items.append(
                {
                    "resourceType": "QuestionnaireResponse",
                    "id": "qr-2",
                    "status": "completed",
                    "subject": {"reference": f"Patient/{client}"},
                    "encounter": {"reference": "Encounter/enc-2"},
                    "authored": payload["session_date"],
                    "item": [{"linkId": "44261-6", "answer": [{"valueInteger": 11}]}],
                }
            )
            refs.append("QuestionnaireResponse/qr-2")
        expected.append(sorted(refs))
    answer = api.client.post(
        "/fhir/r4", content=json.dumps(fhir.bundle(items, "batch")), headers={**headers, **FHIR_JSON}
    )
    assert answer.status_code == 200, answer.text
    assert {e["response"]["status"] for e in answer.json()["entry"]} == {"201 Created"}
    v1_client = f"{client}-v1"
    assert api.client.post(f"/v1/clients/{v1_client}/sessions", json=payloads[0], headers=headers).status_code == 201

    found = api.client.get(f"/fhir/r4/RiskAssessment?subject={client}", headers=headers).json()
    Bundle.model_validate(found)
    resources = [RiskAssessment.model_validate(e["resource"]) for e in found["entry"]]
    assert [sorted(b.reference for b in r.basis) for r in resources] == expected
    from_v1 = api.client.get(f"/fhir/r4/RiskAssessment?subject={v1_client}", headers=headers).json()
    [only] = [RiskAssessment.model_validate(e["resource"]) for e in from_v1["entry"]]
    assert only.basis is None


def test_metadata_is_a_public_r4_capability_statement_of_what_is_served(api):
    answer = api.client.get("/fhir/r4/metadata")  # FHIR's capabilities interaction: no key
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/fhir+json")
    statement = get_fhir_model_class("CapabilityStatement").model_validate(answer.json())
    assert statement.fhirVersion == "4.0.1" and statement.kind == "instance" and statement.format == ["json"]
    [rest] = statement.rest
    assert rest.mode == "server" and {i.code for i in rest.interaction} == {"batch", "transaction"}
    by_type = {r.type: r for r in rest.resource}
    assert {"RiskAssessment", "Observation", "QuestionnaireResponse", "Appointment"} <= set(by_type)
    assert [i.code for i in by_type["RiskAssessment"].interaction] == ["search-type", "read"]
    assert [p.name for p in by_type["RiskAssessment"].searchParam] == ["subject"]
    assert statement.implementation.url == "http://testserver/fhir/r4"
    # Only the statement is public: the rest of /fhir/r4 still wants the key.
    assert api.client.get("/fhir/r4/RiskAssessment?subject=x").status_code == 401
    assert api.client.get("/fhir/r4/metadata/x").status_code == 401
