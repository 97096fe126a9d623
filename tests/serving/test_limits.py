"""Issue 12, item 2: unauthenticated memory and connection exhaustion.

A body is refused before it is read whole, a request without a valid key before its body is
read at all. The chunked tests drive the app as an ASGI server would and count the chunks it
pulled: a 413 or a 401 is not enough, the point is how much of the body was read to give it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import event
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.serving import app as app_module
from dropout_risk.serving.app import create_app
from dropout_risk.serving.ratelimit import RateLimiter, retry_after
from tests.support.mlflow_store import active_store
from tests.support.serving import Api, serving_settings

CAP = 1_048_576  # serving.max_body_bytes by default
CHUNK = 64 * 1024
BIG = 5 * 1024 * 1024


def _run_chunked_post(api, path: str, headers: dict[str, str], receive, timeout: float = 5.0) -> int:
    """Run one chunked POST (no Content-Length) through the app on its own event loop, where its lifespan
    ran, with ``receive`` feeding the body; the status answered. Bounded so a server that would wait
    forever fails the test instead of hanging it."""
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def run() -> None:
        await asyncio.wait_for(api.app(scope, receive, send), timeout)

    api.client.portal.call(run)
    return statuses[0]


def _post_chunked(api, path: str, total: int, headers: dict[str, str]) -> tuple[int, int]:
    """POST a chunked body; the status answered and how many chunks the app pulled from ``receive``."""
    chunks = [b"x" * CHUNK for _ in range(total // CHUNK)]
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    status = _run_chunked_post(api, path, headers, receive, timeout=60.0)
    return status, pulled


def test_a_body_over_the_cap_is_413_with_and_without_a_key(api):
    key = api.new_clinic()
    for headers in (key, {}, {"Authorization": "Bearer not-a-key"}):
        start = time.perf_counter()
        response = api.client.post(
            "/v1/score", content=b"x" * BIG, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 413, (headers.keys(), response.status_code)
        assert response.json() == {"detail": f"request body larger than {CAP} bytes"}
        assert time.perf_counter() - start < 2.0


def test_a_chunked_body_over_the_cap_is_refused_at_the_cap(api):
    status, pulled = _post_chunked(api, "/v1/score", BIG, api.new_clinic())
    assert status == 413
    assert pulled <= CAP // CHUNK + 1, f"read {pulled} of {BIG // CHUNK} chunks"
    # The same app still answers, and a body under the cap is read and judged as before.
    ok = api.client.post("/v1/score", json={"sessions": []}, headers=api.new_clinic())
    assert ok.status_code == 422


BAD_KEYS = [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}]


def test_b_the_key_is_checked_before_the_body_is_read(api):
    """A 500 KB body (under the cap) without a valid key: 401, and not one chunk of it read."""
    for headers in BAD_KEYS:
        status, pulled = _post_chunked(api, "/v1/score", 500 * 1024, headers)
        assert (status, pulled) == (401, 0), headers
        status, pulled = _post_chunked(api, "/v1/clients/c1/sessions", 500 * 1024, headers)
        assert (status, pulled) == (401, 0), headers
    # The answer is the one the routes give: same body, same challenge, no-store.
    response = api.client.post("/v1/score", content=b"x" * 500 * 1024, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json() == {"detail": "missing, unknown or revoked API key"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"
    # A valid key still gets its body read and judged.
    status, pulled = _post_chunked(api, "/v1/score", 500 * 1024, api.new_clinic())
    assert status == 422 and pulled == 500 * 1024 // CHUNK


def test_b_a_declared_length_over_the_cap_is_413_before_the_key(api):
    """Both are header checks; the size needs no database read, so it answers first (README)."""
    response = api.client.post("/v1/score", content=b"x" * (CAP + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def _history(length: int) -> list[dict]:
    first = dt.date(2020, 1, 6)
    return [
        {
            "session_number": n,
            "session_date": (first + dt.timedelta(days=7 * (n - 1))).isoformat(),
            "scores": {"ors": 20.0, "srs": 35.0},
        }
        for n in range(1, length + 1)
    ]


def test_c_score_histories_are_capped(api):
    """serving.max_sessions_per_score (200 by default): one more is 422 naming the rule, nothing scored."""
    headers = api.new_clinic()
    assert api.client.post("/v1/score", json={"sessions": _history(200)}, headers=headers).status_code == 200
    response = api.client.post("/v1/score", json={"sessions": _history(201)}, headers=headers)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "sessions"]
    assert "at most 200 sessions per score" in problem["msg"] and "serving.max_sessions_per_score" in problem["msg"]


@pytest.mark.parametrize(
    ("toml", "keep_alive", "concurrency"),
    [("", 5, 200), ("[serving]\nkeep_alive_seconds = 3\nmax_concurrency = 17\n", 3, 17)],
)
def test_d_serve_bounds_idle_connections_and_concurrency(tmp_path, monkeypatch, toml, keep_alive, concurrency):
    """`dropout-risk serve` hands uvicorn the keep-alive timeout and the concurrency bound from the settings."""
    runs: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda _app, **options: runs.append(options))
    monkeypatch.setattr(app_module, "create_app", lambda _settings: object())
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):  # restored after: serve sets them
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "dropout-risk.toml"
    config.write_text(toml)
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 0, result.output
    [options] = runs
    assert options["timeout_keep_alive"] == keep_alive
    assert options["limit_concurrency"] == concurrency


@pytest.fixture(scope="module")
def limited(champion, tmp_path_factory) -> Iterator[Api]:
    """An app whose keys may send 3 requests at once and 1 a second after that."""
    url = f"sqlite:///{tmp_path_factory.mktemp('limited')}/api.db"
    with active_store(champion.store):
        app = create_app(serving_settings(url, rate_limit=1, rate_limit_burst=3), poll=False)
        with TestClient(app) as client:
            yield Api(client, app, "sqlite")


def test_e_each_key_is_rate_limited_on_its_own(limited):
    busy, quiet = limited.new_clinic(), limited.new_clinic()
    answers = [limited.client.get("/v1/clients", headers=busy) for _ in range(6)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = [a for a in answers[3:] if a.status_code == 429]
    assert len(refused) >= 2, [a.status_code for a in answers]
    assert refused[0].headers["Retry-After"] == "1"
    assert "rate limit" in refused[0].json()["detail"]
    # Refused before the body is read or anything runs: a body over nothing, the same 429.
    status, pulled = _post_chunked(limited, "/v1/score", 500 * 1024, busy)
    assert (status, pulled) == (429, 0)
    # Another clinic's key is not slowed by the busy one, and no key is still 401, not 429.
    assert limited.client.get("/v1/clients", headers=quiet).status_code == 200
    assert limited.client.get("/v1/clients").status_code == 401
    time.sleep(1.1)  # a token back
    assert limited.client.get("/v1/clients", headers=busy).status_code == 200


def test_e_a_key_over_its_rate_is_refused_without_a_database_read(limited):
    """Refusing a flooding clinic must cost less than serving it: no key lookup for a key seen valid."""
    key = limited.new_clinic()
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    event.listen(limited.app.state.reader, "before_cursor_execute", record)
    try:
        assert [limited.client.get("/v1/clients", headers=key).status_code for _ in range(3)] == [200] * 3
        assert any("api_keys" in s for s in statements)  # the lookup is seen when it happens
        statements.clear()
        assert limited.client.get("/v1/clients", headers=key).status_code == 429
        assert statements == []
    finally:
        event.remove(limited.app.state.reader, "before_cursor_execute", record)


def test_e_token_bucket_refills_at_the_rate_up_to_the_burst():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=4, clock=lambda: now[0])
    assert [limiter.wait("k") for _ in range(4)] == [0.0] * 4
    assert limiter.wait("k") == pytest.approx(0.5)
    assert limiter.wait("other") == 0.0
    now[0] = 1.0  # two tokens back
    assert [limiter.wait("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait("k") > 0
    now[0] = 100.0  # never more than the burst
    assert sum(limiter.wait("k") == 0.0 for _ in range(10)) == 4
    assert retry_after(0.01) == "1" and retry_after(1.2) == "2"


def test_e_a_long_score_costs_a_token_per_started_block_of_sessions(limited):
    """serving.rate_limit_sessions (20): a 41-session score costs 3 of the key's 3 tokens, a 20-session one 1.

    Counting requests alone let one clinic's 200-session scores take half a core within its limit and
    slow another clinic's 5-session ones about fourfold (benchmarks/attack_limits.py).
    """
    heavy, light = limited.new_clinic(), limited.new_clinic()
    assert limited.client.post("/v1/score", json={"sessions": _history(41)}, headers=heavy).status_code == 200
    refused = limited.client.get("/v1/clients", headers=heavy)
    assert refused.status_code == 429 and "rate limit" in refused.json()["detail"]
    assert limited.client.post("/v1/score", json={"sessions": _history(20)}, headers=light).status_code == 200
    assert [limited.client.get("/v1/clients", headers=light).status_code for _ in range(2)] == [200, 200]


def test_e_charged_work_is_a_debt_repaid_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=4, clock=lambda: now[0])
    limiter.charge("unseen", 3)  # no bucket yet: nothing to charge (the key was never let through)
    assert "unseen" not in limiter
    assert limiter.wait("k") == 0.0  # 3 left
    limiter.charge("k", 5)  # 3 - 5 = -2: the request already runs; the next ones wait
    assert limiter.wait("k") == pytest.approx(1.5)  # (1 - (-2)) / 2
    limiter.charge("k", 100)
    assert limiter.wait("k") == pytest.approx(2.5)  # never more than a burst in debt: (1 + 4) / 2
    now[0] = 2.5
    assert limiter.wait("k") == 0.0


@pytest.fixture(scope="module")
def impatient(champion, tmp_path_factory) -> Iterator[Api]:
    """An app that waits at most half a second for a request body."""
    url = f"sqlite:///{tmp_path_factory.mktemp('impatient')}/api.db"
    with active_store(champion.store):
        app = create_app(serving_settings(url, body_timeout_seconds=0.5), poll=False)
        with TestClient(app) as client:
            yield Api(client, app, "sqlite")


def _post_stalled(api: Api, headers: dict[str, str]) -> int:
    """POST a chunked body whose first chunk arrives and whose next never does; the status answered."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b'{"sessions": [', "more_body": True}
        await asyncio.Event().wait()  # the client stalls; only the app's own timeout ends this
        raise AssertionError("unreachable")

    return _run_chunked_post(api, "/v1/score", headers, receive, timeout=5.0)


def test_f_a_half_sent_body_is_408_within_the_timeout(impatient):
    start = time.perf_counter()
    assert _post_stalled(impatient, impatient.new_clinic()) == 408
    assert time.perf_counter() - start < 3
    # A whole body in time is read as before.
    ok = impatient.client.post("/v1/score", json={"sessions": _history(3)}, headers=impatient.new_clinic())
    assert ok.status_code == 200
