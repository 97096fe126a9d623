"""The background worker: sends due deliveries, signed per Standard Webhooks, and retries with backoff.

Each attempt is one POST with a short timeout and no redirects followed; a 2xx acknowledges it.
Otherwise the next attempt waits ``first_retry_seconds`` doubled at each attempt, at most
``max_retry_seconds``, until ``give_up_after_seconds`` after the alert: then it is failed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time

import httpx
from sqlalchemy import Engine
from standardwebhooks import Webhook

from dropout_risk.serving.settings import WebhooksConfig
from dropout_risk.serving.webhooks import outbox
from dropout_risk.serving.webhooks.targets import target_problem

log = logging.getLogger(__name__)
BATCH = 50


def signed_headers(secret: str, message_id: str, body: str, when: dt.datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body),
    }


class Deliverer:
    def __init__(self, engine: Engine, reader: Engine, config: WebhooksConfig):
        self.engine, self.reader, self.config = engine, reader, config
        self.lease = config.timeout_seconds + 5

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.config.timeout_seconds, follow_redirects=False) as client:
            while True:
                try:
                    sent = await self.once(client)
                except Exception as exc:  # the database or the network: try again at the next poll
                    log.error("webhook delivery round failed (%s)", type(exc).__name__)
                    sent = 0
                if not sent:
                    await asyncio.sleep(self.config.poll_seconds)

    async def once(self, client: httpx.AsyncClient) -> int:
        now = time.time()
        with self.reader.connect() as connection:  # a read that takes no write lock while idle
            if not outbox.any_due(connection, now):
                return 0
        due = await asyncio.to_thread(outbox.claim, self.engine, now, self.lease, BATCH)
        results = await asyncio.gather(*(self._send(client, d) for d in due))
        await asyncio.to_thread(self._settle, list(zip(due, results, strict=True)))
        return len(due)

    async def _send(self, client: httpx.AsyncClient, delivery: outbox.Due) -> tuple[int | None, str | None]:
        problem = target_problem(delivery.url, self.config.allow_loopback_http)
        if problem is not None:
            return None, "target not allowed"
        body = json.dumps(delivery.payload, separators=(",", ":"))
        headers = signed_headers(delivery.secret, delivery.message_id, body, dt.datetime.now(dt.UTC))
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        return response.status_code, None

    def _settle(self, attempts: list[tuple[outbox.Due, tuple[int | None, str | None]]]) -> None:
        now = time.time()
        with self.engine.begin() as connection:
            for delivery, (status, error) in attempts:
                wait = min(self.config.max_retry_seconds, self.config.first_retry_seconds * 2**delivery.attempts)
                give_up = now + wait > delivery.created_at + self.config.give_up_after_seconds
                outbox.settle(connection, delivery, status, error, None if give_up else now + wait, now)
