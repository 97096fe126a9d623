"""Webhooks (issue 15): endpoints per clinic, alerts written with the session, signed deliveries retried until 2xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import create_key
from dropout_risk.serving.settings import WebhooksConfig
from tests.support.mlflow_store import active_store
from tests.support.serving import drop_api_tables, serving_settings
from tests.support.webhooks import Receiver

LOW_ALLIANCE = {"session_number": 1, "session_date": "2026-01-05", "scores": {"ors": 14.0, "srs": 20.0}}


@dataclass
class Hooks:
    client: TestClient
    app: FastAPI

    def clinic(self, name: str) -> dict[str, str]:
        with transaction(self.app.state.sessions) as db:
            return {"Authorization": f"Bearer {create_key(db, name)[0]}"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hooks(request, champion, tmp_path_factory) -> Iterator[Hooks]:
    """The app with fast retries on a fresh SQLite file or PostgreSQL database; the delivery worker running."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hooks')}/api.db"
    else:
        url = request.getfixturevalue("postgres_database")
    settings = serving_settings(url)
    settings.webhooks = WebhooksConfig(
        allow_loopback_http=True, first_retry_seconds=0.1, max_retry_seconds=0.2, poll_seconds=0.05, timeout_seconds=2
    )
    with active_store(champion.store):
        app = create_app(settings, poll=False)
        with TestClient(app) as client:
            yield Hooks(client, app)
    if request.param == "postgresql":  # the session's database is shared by modules
        drop_api_tables(url)


def wait_for(condition, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_alert_is_signed_retried_until_acknowledged_and_listed(hooks):
    receiver = Receiver(fail_first=2).start()
    headers = hooks.clinic("hooks-a")
    try:
        created = hooks.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["flag.raised", "risk.band_raised"]}, headers=headers
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["secret"].startswith("whsec_")
        listed = hooks.client.get("/v1/webhooks", headers=headers).json()
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
        answer = hooks.client.post("/v1/clients/hk-1/sessions", json=LOW_ALLIANCE, headers=headers)
        assert answer.status_code == 201
        risk = answer.json()["risk"]
        assert risk["flags"], "an SRS of 20 is below the cutoff: a flag fires"
        deliveries = f"/v1/webhooks/{endpoint['id']}/deliveries"
        wait_for(lambda: {d["status"] for d in hooks.client.get(deliveries, headers=headers).json()} == {"delivered"})
        listed = hooks.client.get(deliveries, headers=headers).json()
        assert "flag.raised" in {d["event"] for d in listed}
        # Two 503s, then every delivery acknowledged; retries carry the same webhook-id.
        assert sum(d["attempts"] for d in listed) == len(receiver.received) == len(listed) + 2
        assert receiver.ids() == {d["message_id"] for d in listed}
        for delivery in receiver.received:
            payload = Webhook(endpoint["secret"]).verify(delivery.body, delivery.headers)
            assert payload["data"]["client_id"] == "hk-1"
            assert payload["data"]["probability"] == risk["probability"] and payload["data"]["band"] == risk["band"]
            # What an alert carries, and nothing else: no scores (a "14" searched in the body once matched the
            # timestamp's seconds).
            assert set(payload["data"]) - {"raised"} == {
                "client_id",
                "session_number",
                "band",
                "probability",
                "model_version",
                "flags",
                "previous_band",
                "previous_probability",
            }  # and a flag.raised alert names the flags it raised
        forged = {**receiver.received[0].headers, "webhook-signature": "v1," + "A" * 44}
        with pytest.raises(Exception, match="[Ss]ignature"):
            Webhook(endpoint["secret"]).verify(receiver.received[0].body, forged)
        # Another clinic sees none of it; a retried session raises nothing new.
        other = hooks.clinic("hooks-b")
        assert hooks.client.get(deliveries, headers=other).status_code == 404
        assert hooks.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=other).status_code == 404
        count = len(receiver.received)
        assert hooks.client.post("/v1/clients/hk-1/sessions", json=LOW_ALLIANCE, headers=headers).status_code == 200
        time.sleep(0.5)
        assert len(receiver.received) == count
        assert hooks.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=headers).status_code == 204
        assert hooks.client.get("/v1/webhooks", headers=headers).json() == []
    finally:
        receiver.stop()


@pytest.mark.parametrize("status", [500, 307])
def test_a_receiver_that_never_acknowledges_is_given_up_and_shown_failed(hooks, monkeypatch, status):
    """A 500 forever, or a redirect (not followed: the target it names never hears of the alert)."""
    monkeypatch.setattr(hooks.app.state.settings.webhooks, "give_up_after_seconds", 0.5)
    elsewhere = Receiver().start()
    receiver = Receiver(status=status, location=elsewhere.url).start()
    headers = hooks.clinic(f"hooks-c-{status}")
    try:
        endpoint = hooks.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["flag.raised"]}, headers=headers
        ).json()
        assert hooks.client.post("/v1/clients/hk-2/sessions", json=LOW_ALLIANCE, headers=headers).status_code == 201
        deliveries = f"/v1/webhooks/{endpoint['id']}/deliveries"
        wait_for(lambda: [d["status"] for d in hooks.client.get(deliveries, headers=headers).json()] == ["failed"])
        [failed] = hooks.client.get(deliveries, headers=headers).json()
        assert failed["last_status"] == status and failed["attempts"] >= 2
        assert elsewhere.received == []
    finally:
        receiver.stop()
        elsewhere.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example/x",
        "ftp://127.0.0.1/x",
        "https://user:pw@hooks.example/x",
        "not a url",
        "http://10.0.0.1/x",
    ],
)
def test_only_https_targets_and_loopback_when_allowed(hooks, url):
    headers = hooks.clinic(f"hooks-url-{abs(hash(url))}")
    answer = hooks.client.post("/v1/webhooks", json={"url": url, "events": ["flag.raised"]}, headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "url"]
    assert (
        hooks.client.post(
            "/v1/webhooks", json={"url": "https://x.example/h", "events": ["nope"]}, headers=headers
        ).status_code
        == 422
    )


def test_two_processes_deliver_each_alert_once_between_them(hooks, champion):
    """A second app on the same database runs its own worker: claims keep them from sending one alert twice."""
    receiver = Receiver().start()
    headers = hooks.clinic("hooks-two")
    try:
        endpoint = hooks.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["flag.raised"]}, headers=headers
        ).json()
        with active_store(champion.store), TestClient(create_app(hooks.app.state.settings, poll=False)) as other:
            for number in range(30):
                client = hooks.client if number % 2 else other
                answer = client.post(f"/v1/clients/hk-two-{number}/sessions", json=LOW_ALLIANCE, headers=headers)
                assert answer.status_code == 201
            deliveries = f"/v1/webhooks/{endpoint['id']}/deliveries"
            wait_for(lambda: [d["status"] for d in other.get(deliveries, headers=headers).json()] == ["delivered"] * 30)
        listed = hooks.client.get(deliveries, headers=headers).json()
        assert receiver.ids() == {d["message_id"] for d in listed}
        assert len(receiver.received) == 30  # none sent twice
    finally:
        receiver.stop()
