"""Webhook alerts survive crashes and a receiver that is down (issue 15), on a real `dropout-risk serve`.

``DROPOUT_RISK_WEBHOOK_ALERTS`` sessions (100 by default to keep the suite's time; the issue's 200: set
it) each raise at least one alert (an SRS below the cutoff fires a flag at session 1); the server is
killed with SIGKILL (``DROPOUT_RISK_WEBHOOK_KILLS``: the issue's 5; by default once), each time right
after a session was acknowledged, so its alert is committed in the outbox but (most likely: the figures
count the alerts still pending at each kill) not delivered yet; restarted,
the server delivers it. Then the receiver goes down (``DROPOUT_RISK_WEBHOOK_DOWN_SECONDS``, 5 s by
default to keep the suite's time; the issue's minute: set it to 60) while more alerts are raised, and
gets them all once it is back. Every
delivery verifies with the Standard Webhooks reference verifier; duplicates share a webhook-id. It runs
on SQLite and on PostgreSQL.

Then two `serve` processes on one PostgreSQL database, both delivering: one is killed with SIGKILL while
a delivery of its own is in flight (the receiver holds it; the sending socket is the killed process's),
and the other sends that alert again after the claim's lease, with the same webhook-id; none is lost.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from standardwebhooks import Webhook

from tests.support.processes import ApiServer, database, fresh_postgres_database, report, start_with_key
from tests.support.webhooks import Received, Receiver, local_tcp_ports

ALERTS = int(os.environ.get("DROPOUT_RISK_WEBHOOK_ALERTS", "100"))
# The 5 kills: DROPOUT_RISK_WEBHOOK_KILLS=5 (each restart costs a cold start, about 8 s here: the
# suite runs one on each backend to keep its time). Kills are spread evenly over the sessions.
DEFAULT_KILLS = {"sqlite": 1, "postgresql": 1}
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


def outbox(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT message_id, status FROM webhook_deliveries")).tuples().all())


def wait_delivered(engine: Engine, receiver: Receiver, seen: set[str], seconds: float) -> dict[str, str]:
    """Every outbox row delivered, and every one's webhook-id seen by a receiver (``seen``: earlier ones)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = outbox(engine)
        if rows and set(rows.values()) == {"delivered"} and set(rows) <= receiver.ids() | seen:
            return rows
        assert time.monotonic() < deadline, f"undelivered: {sum(s != 'delivered' for s in rows.values())}"
        time.sleep(0.2)


def register(server: ApiServer, key: str, receiver: Receiver) -> dict:
    return httpx.post(
        f"{server.url}/v1/webhooks",
        json={"url": receiver.url, "events": ["flag.raised", "risk.band_raised"]},
        headers={"Authorization": f"Bearer {key}"},
    ).json()


def verified(received: list[Received], secret: str) -> tuple[dict[str, set[bytes]], set[str]]:
    """Each webhook-id's bodies (a re-sent alert is the same), and the clients whose flag arrived."""
    flagged = set()
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for delivery in received:
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        bodies[delivery.headers["webhook-id"]].add(delivery.body)
        if payload["type"] == "flag.raised":
            flagged.add(payload["data"]["client_id"])
    return bodies, flagged


def kill_after(backend: str) -> tuple[int, ...]:
    """The sessions acknowledged before each kill."""
    kills = int(os.environ.get("DROPOUT_RISK_WEBHOOK_KILLS", DEFAULT_KILLS[backend]))
    return tuple(round(ALERTS * (k + 0.5) / kills) for k in range(kills))


@pytest.mark.reliability
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_alert_is_delivered_at_least_once_through_kills_and_a_receiver_outage(backend, champion, tmp_path):
    started, kills, pending_at_kills = time.monotonic(), kill_after(backend), 0
    with database(backend, tmp_path) as url:
        engine = create_engine(url)
        receiver = Receiver().start()
        server = ApiServer(tmp_path, url, champion.store.uri, env=FAST_RETRIES)
        try:
            key = start_with_key(server, "alerts")
            endpoint = register(server, key, receiver)
            for number in range(ALERTS):
                record(server, key, f"alert-{number:03d}", session(number))
                if number + 1 in kills:
                    server.kill9()
                    # Alerts committed but not yet acknowledged by the receiver when the process died.
                    pending_at_kills += sum(s == "pending" for s in outbox(engine).values())
                    server.start()
            assert server.starts == 1 + len(kills)
            delivered = wait_delivered(engine, receiver, set(), 60)

            receiver.stop()
            received = list(receiver.received)
            for number in range(ALERTS, ALERTS + 20):
                record(server, key, f"alert-{number:03d}", session(number))
            time.sleep(DOWN_SECONDS)
            assert len(outbox(engine)) > len(delivered)
            receiver = Receiver(port=receiver.port).start()
            seen = {r.headers["webhook-id"] for r in received}
            rows = wait_delivered(engine, receiver, seen, 30 + DOWN_SECONDS)
            received += receiver.received
        finally:
            server.stop()
            receiver.stop()
            engine.dispose()

    bodies, flagged = verified(received, endpoint["secret"])
    # Every session's flag reached the receiver, as every alert in the outbox did; a re-sent one is the same.
    assert flagged == {f"alert-{n:03d}" for n in range(ALERTS + 20)}
    assert set(rows) == set(bodies) and len(rows) >= ALERTS + 20
    assert all(len(b) == 1 for b in bodies.values())
    report(
        "webhooks_crash",
        backend=backend,
        alerts=len(rows),
        kills=len(kills),
        pending_at_kills=pending_at_kills,
        down_seconds=DOWN_SECONDS,
        redelivered=len(received) - len(bodies),
        seconds=round(time.monotonic() - started, 1),
    )


TWO_PROCESS_SESSIONS = 80


@pytest.mark.reliability
def test_two_serve_processes_one_killed_mid_delivery_lose_no_alert(champion, tmp_path):
    """Both processes record and deliver; A dies holding a claimed, unacknowledged delivery; B sends it."""
    started = time.monotonic()
    with fresh_postgres_database() as url:
        engine = create_engine(url)
        receiver = Receiver(delay=1.0).start()  # under the 2 s timeout: a delivery stays in flight 1 s
        first = ApiServer(tmp_path, url, champion.store.uri, env=FAST_RETRIES, name="api-a")
        second = ApiServer(tmp_path, url, champion.store.uri, env=FAST_RETRIES, name="api-b")
        killed_in_flight: set[int] = set()
        try:
            with ThreadPoolExecutor(1) as pool:  # the two cold starts side by side, as a deployment's would be
                starting = pool.submit(second.start)
                key = start_with_key(first, "alerts")
                starting.result()
            endpoint = register(first, key, receiver)
            for number in range(TWO_PROCESS_SESSIONS):
                server = first if first.running and number % 2 == 0 else second
                record(server, key, f"pair-{number:03d}", session(number))
                if first.running:
                    killed_in_flight = receiver.waiting_ports() & local_tcp_ports(first.pid)
                    if killed_in_flight:
                        first.kill9()
            assert not first.running, "no delivery of the first process was seen in flight"
            rows = wait_delivered(engine, receiver, set(), 60)
        finally:
            first.stop()
            second.stop()
            receiver.stop()
            engine.dispose()

    bodies, flagged = verified(receiver.received, endpoint["secret"])
    assert flagged == {f"pair-{n:03d}" for n in range(TWO_PROCESS_SESSIONS)}
    assert set(rows) == set(bodies) and all(len(b) == 1 for b in bodies.values())
    redelivered = len(receiver.received) - len(bodies)
    assert redelivered >= len(killed_in_flight)  # the killed process's held deliveries were sent again
    report(
        "webhooks_two_processes",
        alerts=len(rows),
        killed_in_flight=len(killed_in_flight),
        redelivered=redelivered,
        seconds=round(time.monotonic() - started, 1),
    )
