"""CDS Hooks 2.0: discovery, the patient-view card, and callers' JWTs checked against their JWKS (issue 15).

The JWKS is served by a local HTTP server; the tokens are really signed (RS256 and ES256 key pairs);
the responses are validated against the specification's shapes (tests/support/cds_hooks.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import create_key
from dropout_risk.serving.settings import CdsHooksClient, CdsHooksConfig
from dropout_risk.serving.tables import SessionRecord
from tests.support import fhir
from tests.support.cds_hooks import CARDS_SCHEMA, DISCOVERY_SCHEMA, KeyPair, claims, jwks_server
from tests.support.mlflow_store import active_store
from tests.support.serving import serving_settings

EHR, STORING_EHR = "https://ehr.example/fhir", "https://other-ehr.example"
SERVICE = "http://testserver/cds-services/dropout-risk"
SUMMARY = re.compile(r"^Dropout risk \d+% \((low|moderate|high)\)(, (up|down|unchanged) from \d+%)?$")


@dataclass
class Cds:
    client: TestClient
    rsa: KeyPair
    ec: KeyPair
    keys: dict[str, dict[str, str]]  # clinic -> /v1 headers
    app: FastAPI

    def call(self, token: str | None, body: dict) -> object:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.client.post("/cds-services/dropout-risk", json=body, headers=headers)

    def sessions(self) -> int:
        with self.app.state.sessions() as db:
            return int(db.scalar(select(func.count()).select_from(SessionRecord)) or 0)


@pytest.fixture(scope="module")
def cds(champion, tmp_path_factory) -> Iterator[Cds]:
    rsa, ec = KeyPair("rsa-1"), KeyPair("ec-1", "ES256")
    with jwks_server(rsa) as url, active_store(champion.store):
        clients = [
            CdsHooksClient(issuer=EHR, jwks_url=url, clinic="cds-north"),
            CdsHooksClient(issuer=STORING_EHR, jwks={"keys": [ec.jwk]}, clinic="cds-south", store_observations=True),
        ]
        settings = serving_settings(f"sqlite:///{tmp_path_factory.mktemp('cds')}/api.db")
        settings.cds_hooks = CdsHooksConfig(clients=clients)
        app = create_app(settings, poll=False)
        with TestClient(app) as client:
            keys = {}
            with transaction(app.state.sessions) as db:
                for clinic in ("cds-north", "cds-south"):
                    keys[clinic] = {"Authorization": f"Bearer {create_key(db, clinic)[0]}"}
            yield Cds(client, rsa, ec, keys, app)


def hook(patient: str, prefetch: list[dict] | None = None) -> dict:
    body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": EHR,
        "context": {"userId": "Practitioner/1", "patientId": patient},
    }
    if prefetch is not None:
        body["prefetch"] = {
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in prefetch],
            }
        }
    return body


def test_discovery_lists_the_patient_view_service_with_its_prefetch(cds):
    answer = cds.client.get("/cds-services")
    assert answer.status_code == 200
    jsonschema_rs.validator_for(DISCOVERY_SCHEMA).validate(answer.json())
    [service] = answer.json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "dropout-risk"
    query = service["prefetch"]["observations"]
    assert query.startswith("Observation?patient={{context.patientId}}") and "http://loinc.org|44261-6" in query


def test_a_card_for_stored_sessions_and_for_prefetched_observations_scored_not_stored(cds):
    [(client, payloads)] = fhir.sessions(1, 4, seed=8, prefix="cds-").items()
    headers = cds.keys["cds-north"]
    for payload in payloads[:3]:
        assert cds.client.post(f"/v1/clients/{client}/sessions", json=payload, headers=headers).status_code == 201
    expected = cds.client.get(f"/v1/clients/{client}/risk", headers=headers).json()
    answer = cds.call(cds.rsa.sign(claims(EHR, SERVICE)), hook(client))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    jsonschema_rs.validator_for(CARDS_SCHEMA).validate(answer.json())
    [card] = answer.json()["cards"]
    risk, before = expected["risk"], expected["history"][-2]["probability"]
    assert SUMMARY.match(card["summary"]) and card["summary"].startswith(f"Dropout risk {risk['probability']:.0%}")
    assert f"from {before:.0%}" in card["summary"] and f"({risk['band']})" in card["summary"]
    assert card["indicator"] == {"low": "info", "moderate": "warning", "high": "critical"}[risk["band"]]
    assert all(f["text"] in card["detail"] for f in risk["factors"] + risk["flags"])
    assert all(f"{s['text']} (source: {s['source']})" in card["detail"] for s in risk["suggestions"])
    assert card["source"]["label"] == "dropout-risk"
    assert card["links"][0]["url"] == f"http://testserver/ui/clients/{client}"

    # The fourth session prefetched: scored with the three stored ones, not stored.
    stored = cds.sessions()
    prefetch = [
        fhir.observation(client, k, v, payloads[3]["session_date"], None) for k, v in payloads[3]["scores"].items()
    ]
    prefetch.append(fhir.observation("someone-else", "ors", 1.0, payloads[3]["session_date"], None))
    no_subject = fhir.observation(client, "ors", 2.0, payloads[3]["session_date"], None)
    del no_subject["subject"]
    others = [no_subject, {"resourceType": "NotAResource"}]  # left out, as another client's are
    answer = cds.call(cds.rsa.sign(claims(EHR, SERVICE)), hook(client, prefetch + others))
    jsonschema_rs.validator_for(CARDS_SCHEMA).validate(answer.json())
    # Stored sessions keep their missed counts; the prefetched one has no Appointment, so none.
    history = payloads[:3] + [{**payloads[3], "missed_since_last": None}]
    scored = cds.client.post("/v1/score", json={"sessions": history}, headers=headers).json()["risk"]
    assert answer.json()["cards"][0]["summary"].startswith(f"Dropout risk {scored['probability']:.0%}")
    assert cds.sessions() == stored

    # A clinic that enables storing them: the prefetched session is recorded.
    south = cds.call(cds.ec.sign(claims(STORING_EHR, SERVICE)), hook(client, prefetch[:-1] + others))
    assert south.status_code == 200 and len(south.json()["cards"]) == 1
    assert cds.sessions() == stored + 1
    # A client without sessions: no card.
    assert cds.call(cds.rsa.sign(claims(EHR, SERVICE)), hook("nobody")).json() == {"cards": []}


def test_six_kinds_of_bad_tokens_are_401_and_say_nothing(cds, champion):
    body = hook("cds-any")
    stranger, impostor = KeyPair("rsa-x"), KeyPair("rsa-1")  # the impostor reuses the real key's kid
    replayed = cds.rsa.sign(claims(EHR, SERVICE))
    assert cds.call(replayed, body).status_code == 200
    now = int(time.time())
    bad = {
        "no token": None,
        "unknown issuer": stranger.sign(claims("https://stranger.example", SERVICE)),
        "bad signature": impostor.sign(claims(EHR, SERVICE)),
        "expired": cds.rsa.sign(claims(EHR, SERVICE, iat=now - 900, exp=now - 600)),
        "replayed jti": replayed,
        "wrong aud": cds.rsa.sign(claims(EHR, "https://elsewhere.example/cds-services/dropout-risk")),
        "iat in the future": cds.rsa.sign(claims(EHR, SERVICE, iat=now + 600, exp=now + 900)),
        "no iat": cds.rsa.sign(claims(EHR, SERVICE, iat=None)),
        "no jti": cds.rsa.sign(claims(EHR, SERVICE, jti=None)),
        "issued too long ago": cds.rsa.sign(claims(EHR, SERVICE, iat=now - 3600, exp=now + 300)),
        "alg none": _unsigned(claims(EHR, SERVICE)),
        "HS256 with the public key": _hs256_with_public_key(cds.rsa, claims(EHR, SERVICE)),
        "another issuer's key": cds.ec.sign(claims(EHR, SERVICE), kid="rsa-1"),
    }
    answers = {name: cds.call(token, body) for name, token in bad.items()}
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(bad, 401)
    assert len({a.text for a in answers.values()}) == 1  # the same answer whatever was wrong
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers.values())
    # Token ids are kept in the database: a token replayed to another process (here another app) is refused too.
    token = cds.rsa.sign(claims(EHR, SERVICE))
    assert cds.call(token, body).status_code == 200
    with active_store(champion.store), TestClient(create_app(cds.app.state.settings, poll=False)) as other:
        replay = other.post("/cds-services/dropout-risk", json=body, headers={"Authorization": f"Bearer {token}"})
        fresh = {"Authorization": f"Bearer {cds.rsa.sign(claims(EHR, SERVICE))}"}
        assert (
            replay.status_code == 401
            and other.post("/cds-services/dropout-risk", json=body, headers=fresh).status_code == 200
        )
    # The token is checked before the body is read: a stranger learns nothing of its shape either.
    assert cds.call(bad["unknown issuer"], {"hook": 1}).status_code == 401
    assert cds.call(cds.rsa.sign(claims(EHR, SERVICE)), {"hook": "patient-view"}).status_code == 422


def _unsigned(payload: dict) -> str:
    import base64

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(payload)}."


def _hs256_with_public_key(pair: KeyPair, payload: dict) -> str:
    """The classic algorithm confusion: an HMAC keyed with the issuer's public key."""
    import base64
    import hashlib
    import hmac

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    from cryptography.hazmat.primitives import serialization

    secret = pair.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": pair.kid}).encode())
    body = part(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def test_the_schemas_refuse_what_the_specification_refuses():
    card = {"summary": "Dropout risk 34% (moderate)", "indicator": "warning", "source": {"label": "dropout-risk"}}
    cards = jsonschema_rs.validator_for(CARDS_SCHEMA)
    assert cards.is_valid({"cards": [card]})
    for broken in (
        {**card, "summary": "x" * 141},
        {**card, "indicator": "hard-stop"},
        {k: v for k, v in card.items() if k != "source"},
        {**card, "links": [{"label": "open", "url": "http://x", "type": "relative"}]},
        {**card, "sumary": "typo"},
    ):
        assert not cards.is_valid({"cards": [broken]}), broken
    assert not jsonschema_rs.validator_for(DISCOVERY_SCHEMA).is_valid({"services": [{"hook": "patient-view"}]})


def test_a_caller_over_its_rate_limit_gets_429_with_retry_after_and_other_callers_do_not(cds, champion):
    settings = cds.app.state.settings.model_copy(deep=True)
    settings.cds_hooks.rate_limit, settings.cds_hooks.rate_limit_burst = 0.01, 2
    body = hook("cds-limited")
    with active_store(champion.store), TestClient(create_app(settings, poll=False)) as limited:

        def call(token: str, payload: dict = body):
            return limited.post(
                "/cds-services/dropout-risk", json=payload, headers={"Authorization": f"Bearer {token}"}
            )

        assert [call(cds.ec.sign(claims(STORING_EHR, SERVICE))).status_code for _ in range(2)] == [200, 200]
        over = call(cds.ec.sign(claims(STORING_EHR, SERVICE)), {"hook": 1})  # refused before the body is read
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert "CDS client" in over.json()["detail"] and STORING_EHR not in over.text
        assert call(cds.rsa.sign(claims(EHR, SERVICE))).status_code == 200  # another issuer: its own bucket
        # A forged token naming the limited issuer is still a 401, and spends nothing of anyone's.
        assert call(KeyPair("ec-1", "ES256").sign(claims(STORING_EHR, SERVICE))).status_code == 401
