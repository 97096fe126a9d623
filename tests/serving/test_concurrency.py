"""Concurrency: 8 writers record 2,000 sessions of 200 clients through a real server, with retries and races.

Each client's sessions belong to one writer and go in order (session n+1 only once
n is acknowledged, as a clinic's system would send them). About 10% of acknowledged
sessions are sent again (a retry after a lost response: 200, the same body); some
are posted twice at the same instant by two connections (one 201, one 200) and some
raced against a different payload for the same number (one 201, one 409).
Afterwards the database and the API must hold every acknowledged session exactly
once, with the acknowledged payload and risk; no request may fail with a 5xx.
Against SQLite (WAL, one writer at a time) and PostgreSQL (row locks).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.processes import ApiServer, database, report, start_with_key, stored_sessions
from tests.support.writes import Run, WritePlan, compare, read_back, write_all

pytestmark = pytest.mark.reliability  # real server processes: `make test` runs it, `make test-fast` does not

PLAN = WritePlan(clients=200, sessions=10, writers=8, retry_share=0.10, identical_races=24, conflicting_races=12)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_writers_store_every_acknowledged_session_exactly_once(backend, champion, tmp_path):
    with database(backend, tmp_path) as url:
        with ApiServer(tmp_path, url, champion.store.uri) as server:
            key = start_with_key(server, "concurrency-clinic")
            run = Run()
            started = time.monotonic()
            write_all([server.url], key, PLAN, PLAN.races(), run)
            elapsed = time.monotonic() - started
            api_mismatches, reads = read_back([server.url], key, run, PLAN)
        stored = stored_sessions(url)

    outcome = compare(run, stored)
    report(
        f"item 2 concurrency [{backend}]",
        writers=PLAN.writers,
        clients=PLAN.clients,
        sessions_planned=PLAN.total,
        write_requests=run.tally.requests,
        retries=run.retries,
        races=run.races,
        conflicts_409=run.conflicts_seen,
        acknowledged=len(run.acknowledged),
        server_errors_5xx=run.tally.server_errors,
        transport_errors=sum(run.tally.errors.values()),
        lost=len(outcome.lost),
        duplicated=len(outcome.duplicated),
        altered=len(outcome.altered),
        stored_unacknowledged=len(outcome.unacknowledged),
        read_requests=reads.requests,
        seconds=round(elapsed, 1),
        writes_per_second=round(run.tally.requests / elapsed, 1),
    )
    print(f"  writes: {run.tally.summary()}\n  reads: {reads.summary()}")
    assert run.problems == []
    assert run.tally.server_errors == 0 and not run.tally.errors
    assert len(run.acknowledged) == PLAN.total
    assert outcome.lost == [] and outcome.duplicated == [] and outcome.altered == [] and outcome.unacknowledged == []
    assert api_mismatches == [] and set(reads.statuses) == {200}


MIGRATE_AT_ONCE = """
import sys, time
from dropout_risk.serving.db import make_engine
from dropout_risk.serving.migrate import upgrade
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade(engine)
engine.dispose()
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_on_a_fresh_database_all_migrate(backend, tmp_path):
    """Replicas starting at once (or `keys create` beside `serve`) all bring the schema up; none fails."""
    with database(backend, tmp_path) as url:
        start_at = time.time() + 4  # every process has imported by then, so they migrate together
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_AT_ONCE, url, str(start_at)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        try:
            outcomes = [(p.wait(timeout=120), p.stdout.read()[-400:]) for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdout.close()
        tables = stored_sessions(url)  # the schema is there (and empty)
    report(
        f"concurrent first start [{backend}]", processes=len(processes), failed=sum(code != 0 for code, _ in outcomes)
    )
    assert [code for code, _ in outcomes] == [0] * len(processes), [out for code, out in outcomes if code]
    assert tables == {}
