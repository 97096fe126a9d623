"""A real `dropout-risk serve` configured from a TOML file as a clinic would: FHIR codes and a CDS Hooks client.

The ORS and SRS codes come from ``[[fhir.codes]]`` and the record system from ``[[cds_hooks.clients]]``
(its JWKS served over local HTTP): no code names either.
"""

from __future__ import annotations

import httpx
import jsonschema_rs
import pytest

from tests.support import fhir
from tests.support.cds_hooks import CARDS_SCHEMA, KeyPair, claims, jwks_server
from tests.support.processes import ApiServer, start_with_key

EHR = "https://ehr.north.example"


@pytest.mark.reliability
def test_a_configured_server_imports_a_bundle_and_answers_a_signed_hook(champion, tmp_path):
    pair = KeyPair("north-1")
    with jwks_server(pair) as jwks_url:
        config = tmp_path / "dropout-risk.toml"
        config.write_text(
            fhir.CODES_TOML
            + f"""
[[cds_hooks.clients]]
issuer = "{EHR}"
jwks_url = "{jwks_url}"
clinic = "north"
"""
        )
        url = f"sqlite:///{tmp_path}/dropout_risk.db"
        with ApiServer(tmp_path, url, champion.store.uri, env={"DROPOUT_RISK_CONFIG": str(config)}) as server:
            key = start_with_key(server, "north")
            [(client, payloads)] = fhir.sessions(1, 3, seed=4, prefix="north-").items()
            bundle = fhir.bundle(fhir.resources({client: payloads}), "transaction")
            answer = httpx.post(
                f"{server.url}/fhir/r4",
                json=bundle,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            assert {e["response"]["status"] for e in answer.json()["entry"]} == {"201 Created", "200 OK"}
            service = f"{server.url}/cds-services/dropout-risk"
            hook = {"hook": "patient-view", "hookInstance": "h-1", "context": {"patientId": client}}
            card = httpx.post(
                service, json=hook, headers={"Authorization": f"Bearer {pair.sign(claims(EHR, service))}"}
            )
            assert card.status_code == 200, card.text
            jsonschema_rs.validator_for(CARDS_SCHEMA).validate(card.json())
            assert card.json()["cards"][0]["summary"].startswith("Dropout risk ")
            stranger = KeyPair("north-1").sign(claims(EHR, service))  # the right kid, another key
            assert httpx.post(service, json=hook, headers={"Authorization": f"Bearer {stranger}"}).status_code == 401
