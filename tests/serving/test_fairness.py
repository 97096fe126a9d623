"""Issue 12, item 2 (fairness): one clinic's flood must not slow another clinic.

A rate limit alone let one clinic's 64 concurrent 200-session scores raise another clinic's
p95 from 7 ms to 584 ms. Each key may have ``serving.max_inflight_per_key`` requests in
progress; beyond it a request is 429 at once, and a key that keeps asking before its
``Retry-After`` gets its refusals only when that time comes (a key over its limits is
refused before its database lookup: test_limits.py). None of this may leave state behind
for bearers that were never valid. A real `dropout-risk serve`; requests are held in flight by sending only
part of their bodies, as a slow client would.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dropout_risk.serving.backoff import Backoff
from dropout_risk.serving.ratelimit import RateLimiter
from tests.support.processes import ApiServer, create_key, session_payload, start_with_key

pytestmark = pytest.mark.reliability  # a real server process

CAP = 2
RANDOM_BEARERS = 1_000


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory) -> Iterator[ApiServer]:
    """A server whose keys may have 2 requests in progress, with a rate limit too high to matter here."""
    workdir = tmp_path_factory.mktemp("fairness")
    env = {
        "DROPOUT_RISK_SERVING__MAX_INFLIGHT_PER_KEY": str(CAP),
        "DROPOUT_RISK_SERVING__RATE_LIMIT": "1000",
        "DROPOUT_RISK_SERVING__RATE_LIMIT_BURST": "1000",
        "DROPOUT_RISK_SERVING__BODY_TIMEOUT_SECONDS": "60",  # held bodies stay in flight for the whole test
    }
    with ApiServer(workdir, f"sqlite:///{workdir}/api.db", champion.store.uri, env=env) as api:
        start_with_key(api, "warm-up")
        yield api


def _hold_in_flight(server: ApiServer, key: str) -> socket.socket:
    """A POST /v1/score whose headers and first 10 of 1,000 body bytes are sent: in progress until the rest comes."""
    head = (
        f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode() + b'{"sessions')
    return sock


def _timed(http: httpx.Client, method: str, path: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = http.request(method, path, **kwargs)
    return response, time.perf_counter() - started


def _limit_keys(server: ApiServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^dropout_risk_limit_keys\{table="(\w+)",worker="\d+"\} (\S+)$', text, re.M)
    }


def test_a_key_at_its_cap_is_refused_at_once_while_another_key_is_served(server):
    key_a = create_key(server.workdir, server.database_url, "busy")
    key_b = create_key(server.workdir, server.database_url, "neighbour")
    held = [_hold_in_flight(server, key_a) for _ in range(CAP)]
    try:
        with server.client(key_a, timeout=10) as a, server.client(key_b, timeout=10) as b:
            deadline = time.monotonic() + 10
            refused, took = _timed(a, "GET", "/v1/clients")
            while refused.status_code == 200 and time.monotonic() < deadline:  # the held two not yet counted
                time.sleep(0.05)
                refused, took = _timed(a, "GET", "/v1/clients")
            assert refused.status_code == 429, refused.status_code
            assert took < 0.5, f"the first refusal took {took:.2f} s: it must not wait"
            assert refused.headers["Retry-After"] == "1"
            assert "in progress" in refused.json()["detail"]
            # The other clinic is served meanwhile, a score included.
            body = {"sessions": [session_payload("b-client", n) for n in range(1, 6)]}
            assert b.post("/v1/score", json=body).status_code == 200
            assert b.get("/v1/clients").status_code == 200
            # Asking again before Retry-After: refused still, but only once that second has passed.
            again, took = _timed(a, "GET", "/v1/clients")
            assert again.status_code == 429
            assert took >= 0.8, f"a refusal that ignored Retry-After came back in {took:.2f} s"
            assert _limit_keys(server).get("in_flight") == 1.0  # the busy key's count; none for the others
            # One held request finishes (its body arrives, invalid JSON): the key may send one more.
            held[0].sendall(b"x" * 990)
            assert held[0].recv(4096).startswith(b"HTTP/1.1 4")
            time.sleep(1.1)  # past the Retry-After
            assert a.get("/v1/clients").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_flood_of_random_bearers_leaves_no_limit_state(server):
    key = create_key(server.workdir, server.database_url, "flooded")
    with server.client(key) as http:
        assert http.get("/v1/clients").status_code == 200
    before = _limit_keys(server)

    def send(_: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            headers = [{"Authorization": f"Bearer drk_{secrets.token_urlsafe(32)}"} for _ in range(RANDOM_BEARERS // 4)]
            return [http.get("/v1/clients", headers=h).status_code for h in headers]

    with ThreadPoolExecutor(4) as pool:
        statuses = [s for batch in pool.map(send, range(4)) for s in batch]
    assert set(statuses) == {401} and len(statuses) == RANDOM_BEARERS
    after = _limit_keys(server)
    assert after["rate"] == before["rate"] >= 1, (before, after)  # the valid keys' buckets only
    assert after.get("backoff", 0) == before.get("backoff", 0)


def test_each_table_is_bounded_whatever_the_keys():
    """The backstop behind 'only keys seen valid get state': least recently used dropped first."""
    limiter, backoff = RateLimiter(rate=1.0, burst=1, max_keys=100), Backoff(max_keys=100)
    for n in range(1_000):
        limiter.wait(f"k{n}")
        backoff.hold(f"k{n}", 1.0)
    assert len(limiter) == 100 and len(backoff) == 100
    assert "k999" in limiter and "k0" not in limiter
