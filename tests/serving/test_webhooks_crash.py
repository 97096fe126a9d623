"""Webhook alerts survive crashes and a receiver that is down (issue 15), on a real `dropout-risk serve`.

200 sessions each raise at least one alert (an SRS below the cutoff fires a flag at session 1); the
server is killed with SIGKILL 5 times (``DROPOUT_RISK_WEBHOOK_KILLS``; 2 by default), each time right
after a session was acknowledged, so its alert is committed in the outbox but (most likely) not
delivered yet; restarted, the server delivers it. Then the
receiver goes down (``DROPOUT_RISK_WEBHOOK_DOWN_SECONDS``, 5 s by default to keep the suite's time; the
issue's minute: set it to 60) while more alerts are raised, and gets them all once it is back. Every
delivery verifies with the Standard Webhooks reference verifier; duplicates share a webhook-id.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import defaultdict

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.processes import ApiServer, start_with_key
from tests.support.webhooks import Receiver

ALERTS = 200
# The 5 kills: DROPOUT_RISK_WEBHOOK_KILLS=5 (each restart costs a cold start, about 8 s here: the
# suite runs 2 to keep its time). Kills are spread evenly over the 200 sessions.
KILLS = int(os.environ.get("DROPOUT_RISK_WEBHOOK_KILLS", "2"))
KILL_AFTER = tuple(round(ALERTS * (k + 0.5) / KILLS) for k in range(KILLS))  # sessions acknowledged before each
DOWN_SECONDS = float(os.environ.get("DROPOUT_RISK_WEBHOOK_DOWN_SECONDS", "5"))
FAST_RETRIES = {
    "DROPOUT_RISK_WEBHOOKS__ALLOW_LOOPBACK_HTTP": "true",
    "DROPOUT_RISK_WEBHOOKS__FIRST_RETRY_SECONDS": "0.2",
    "DROPOUT_RISK_WEBHOOKS__MAX_RETRY_SECONDS": "2",
    "DROPOUT_RISK_WEBHOOKS__POLL_SECONDS": "0.1",
    "DROPOUT_RISK_WEBHOOKS__TIMEOUT_SECONDS": "2",
}


def session(number: int) -> dict:
    return {"session_number": 1, "session_date": "2026-02-02", "scores": {"ors": 12.0 + number % 20, "srs": 20.0}}


def record(server: ApiServer, key: str, client_id: str, body: dict) -> None:
    """Until acknowledged: a request lost to a crash is sent again (201, or 200 if it had been committed)."""
    for _attempt in range(3):
        try:
            answer = httpx.post(
                f"{server.url}/v1/clients/{client_id}/sessions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert answer.status_code in (200, 201), answer.text
            return
        except httpx.TransportError:
            if not server.running:
                server.start()
    raise AssertionError("a session could not be recorded")


def outbox(database: str) -> dict[str, str]:
    with sqlite3.connect(database) as connection:
        return dict(connection.execute("SELECT message_id, status FROM webhook_deliveries").fetchall())


def wait_delivered(database: str, receiver: Receiver, seen: set[str], seconds: float) -> dict[str, str]:
    """Every outbox row delivered, and every one's webhook-id seen by a receiver (``seen``: earlier ones)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = outbox(database)
        if rows and set(rows.values()) == {"delivered"} and set(rows) <= receiver.ids() | seen:
            return rows
        assert time.monotonic() < deadline, f"undelivered: {sum(s != 'delivered' for s in rows.values())}"
        time.sleep(0.2)


@pytest.mark.reliability
def test_every_alert_is_delivered_at_least_once_through_kills_and_a_receiver_outage(champion, tmp_path):
    database = tmp_path / "dropout_risk.db"
    receiver = Receiver().start()
    server = ApiServer(tmp_path, f"sqlite:///{database}", champion.store.uri, env=FAST_RETRIES)
    try:
        key = start_with_key(server, "alerts")
        endpoint = httpx.post(
            f"{server.url}/v1/webhooks",
            json={"url": receiver.url, "events": ["flag.raised", "risk.band_raised"]},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        for number in range(ALERTS):
            record(server, key, f"alert-{number:03d}", session(number))
            if number + 1 in KILL_AFTER:
                server.kill9()
                server.start()
        assert server.starts == 1 + len(KILL_AFTER)
        delivered = wait_delivered(str(database), receiver, set(), 60)

        receiver.stop()
        received = list(receiver.received)
        for number in range(ALERTS, ALERTS + 20):
            record(server, key, f"alert-{number:03d}", session(number))
        time.sleep(DOWN_SECONDS)
        assert len(outbox(str(database))) > len(delivered)
        receiver = Receiver(port=receiver.port).start()
        rows = wait_delivered(str(database), receiver, {r.headers["webhook-id"] for r in received}, 30 + DOWN_SECONDS)
        received += receiver.received
    finally:
        server.stop()
        receiver.stop()

    flagged = set()
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for delivery in received:
        payload = Webhook(endpoint["secret"]).verify(delivery.body, delivery.headers)
        bodies[delivery.headers["webhook-id"]].add(delivery.body)
        if payload["type"] == "flag.raised":
            flagged.add(payload["data"]["client_id"])
    # Every session's flag reached the receiver, as every alert in the outbox did; a re-sent one is the same.
    assert flagged == {f"alert-{n:03d}" for n in range(ALERTS + 20)}
    assert set(rows) == set(bodies) and len(rows) >= ALERTS + 20
    assert all(len(b) == 1 for b in bodies.values())
    duplicates = len(received) - len(bodies)
    print(json.dumps({"alerts": len(rows), "kills": KILLS, "down_seconds": DOWN_SECONDS, "redelivered": duplicates}))
