"""One process of all workers and replicas runs the periodic jobs, and another takes over when it dies (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import text

from dropout_risk.serving.db import make_engine
from dropout_risk.serving.leader import JOBS_LOCK, Leadership
from tests.support.postgres import fresh_postgres_database

HOLD_IN_A_CHILD = """
import sys, time
from dropout_risk.serving.db import make_engine
from dropout_risk.serving.leader import Leadership
leader = Leadership(make_engine(sys.argv[1]))  # kept: its connection holds the lock
print(leader.held(), flush=True)
time.sleep(600)
"""


def test_one_process_leads_until_it_gives_up_or_loses_its_connection():
    with fresh_postgres_database() as url:
        engines = [make_engine(url) for _ in range(3)]
        first, second, third = (Leadership(engine) for engine in engines)
        try:
            assert first.held() and not second.held() and not third.held()
            assert first.held()  # it keeps the lead, asked again
            first.release()
            assert second.held() and not first.held() and not third.held()
            # The database ends the leader's connection (a restart, a network cut): the lead goes with it.
            with engines[2].connect() as admin:
                ended = admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key"
                        # This database's only: other tests' servers hold the same key on theirs.
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ),
                    {"key": JOBS_LOCK},
                ).scalars()
                assert list(ended) == [True]
            assert third.held() and not second.held()
        finally:
            for leadership in (first, second, third):
                leadership.release()
            for engine in engines:
                engine.dispose()


def test_a_leader_killed_with_kill_9_hands_the_lead_over():
    with fresh_postgres_database() as url:
        child = subprocess.Popen([sys.executable, "-c", HOLD_IN_A_CHILD, url], stdout=subprocess.PIPE, text=True)
        engine = make_engine(url)
        survivor = Leadership(engine)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "True"
            assert not survivor.held()
            child.kill()
            child.wait(timeout=30)
            deadline = time.monotonic() + 10  # the server notices the closed socket at once, or nearly
            while not survivor.held():
                assert time.monotonic() < deadline, "the lead was not handed over after kill -9"
                time.sleep(0.1)
        finally:
            if child.poll() is None:
                child.kill()
            survivor.release()
            engine.dispose()


def test_on_sqlite_the_one_process_always_leads(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    try:
        assert Leadership(engine).held() and Leadership(engine).held()
    finally:
        engine.dispose()
