"""Crash: kill -9 the server while four writers record sessions; every acknowledged session survives.

The server is a real ``dropout-risk serve`` process. After about two seconds of load
it gets SIGKILL (no shutdown code runs), then starts again on the same database.
Every session acknowledged (2xx) before the kill must be stored once, with its payload
and risk, and readable through the API. A request in flight at the kill may or may not
have committed; sent again after the restart it must say which (200: it had, 201: it
had not), never 409 or 5xx. On SQLite (WAL, synchronous=NORMAL: a process crash loses
nothing committed) and on PostgreSQL. tests/stress/crash_cycles.py kills it many times.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.support.processes import ApiServer, ClinicWriter, Tally, crash_and_restart, database, report, start_with_key

pytestmark = pytest.mark.reliability  # real server processes: `make test` runs it, `make test-fast` does not

WRITERS = 4
CLIENTS_PER_WRITER = 60
MAX_SESSIONS = 12
KILL_AFTER_SECONDS = 2.0
MIN_ACKNOWLEDGED_BEFORE_KILL = 40


def sqlite_integrity(url: str) -> str:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_while_recording_loses_no_acknowledged_session(backend, champion, tmp_path):
    writers = [ClinicWriter(f"w{i}", CLIENTS_PER_WRITER, MAX_SESSIONS) for i in range(WRITERS)]
    with database(backend, tmp_path) as url, ApiServer(tmp_path, url, champion.store.uri) as server:
        key = start_with_key(server, "crash-clinic")
        crash = crash_and_restart(server, key, writers, KILL_AFTER_SECONDS, MIN_ACKNOWLEDGED_BEFORE_KILL)
        integrity = sqlite_integrity(url) if backend == "sqlite" else "n/a"
        # Writing goes on after the restart: each writer's next session.
        following = Tally()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for writer in writers:
                writer.send(http, next(c for c in writer.clients if writer.next[c] <= MAX_SESSIONS), following)

    report(
        f"item 3 crash [{backend}]",
        writers=WRITERS,
        killed_after_seconds=round(crash.killed_after, 1),
        requests_before_kill=crash.before.requests,
        acknowledged=crash.acknowledged,
        in_flight_at_kill=crash.in_flight,
        in_flight_committed=crash.in_flight_committed,
        server_errors_5xx=crash.before.server_errors + crash.after.server_errors + following.server_errors,
        lost=len(crash.lost),
        altered=len(crash.altered),
        phantom=len(crash.phantom),
        requests_after_restart=crash.after.requests + following.requests,
        sqlite_integrity=integrity,
    )
    print(f"  before the kill: {crash.before.summary()}\n  after the restart: {crash.after.summary()}")
    assert all(not w.unexpected for w in writers), [w.unexpected for w in writers]
    assert crash.acknowledged >= MIN_ACKNOWLEDGED_BEFORE_KILL
    assert crash.lost == [] and crash.altered == [] and crash.phantom == []
    assert crash.api_mismatches == []
    assert integrity in ("ok", "n/a")
    assert set(crash.before.statuses) <= {201} and set(crash.after.statuses) <= {200, 201, 404}
    assert not crash.after.errors and set(following.statuses) == {201} and not following.errors
