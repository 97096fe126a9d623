"""GET /fhir/r4/RiskAssessment: each served risk as an R4 RiskAssessment, behind the clinic's key (issue 15)."""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class

from dropout_risk.serving.fhir.risk_assessment import RISK_PROBABILITY
from tests.support import fhir

RiskAssessment = get_fhir_model_class("RiskAssessment")
Bundle = get_fhir_model_class("Bundle")


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


def test_a_search_without_a_subject_or_for_xml_is_a_400_operation_outcome(api):
    headers = api.new_clinic()
    for query, where in (("", "subject"), ("subject=Group/x", "subject"), ("subject=a&_format=xml", "_format")):
        answer = api.client.get(f"/fhir/r4/RiskAssessment?{query}", headers=headers)
        assert answer.status_code == 400, answer.text
        outcome = get_fhir_model_class("OperationOutcome").model_validate(answer.json())
        assert outcome.issue[0].expression == [where]
