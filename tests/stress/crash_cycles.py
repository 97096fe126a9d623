"""Crash cycles: kill -9 the API server again and again, at random moments, while 8 writers record sessions.

The longer companion of tests/serving/test_crash.py (one kill per backend), run by
.ci/run after `make test`:

    .venv/bin/python tests/stress/crash_cycles.py [--cycles 8] [--backends sqlite,postgresql] [--seed 1]

Each cycle: the writers record (each client's sessions in order) until a random moment
between 0.2 and 3 s, the real `dropout-risk serve` process gets SIGKILL, it starts again
on the same database, every session acknowledged so far is checked in the database
(stored once, same payload, same risk) and through the API, and each request the kill cut
off is sent again (200 if it had committed, 201 if not). Prints the figures; exits 1 if
anything was lost, altered, invented or failed with a 5xx.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: `tests` and the packages

import pytest  # noqa: E402  (the database helper skips through pytest when PostgreSQL is absent)

from tests.support.cohorts import Cohorts  # noqa: E402
from tests.support.mlflow_store import MlflowStore  # noqa: E402
from tests.support.processes import (  # noqa: E402
    ApiServer,
    ClinicWriter,
    crash_and_restart,
    database,
    report,
    start_with_key,
)
from tests.support.training import QUICK, train_champion  # noqa: E402

WRITERS = 8
CLIENTS_PER_WRITER = 40
MAX_SESSIONS = 30


def champion(root: Path) -> MlflowStore:
    """A small trained and promoted model in a throwaway SQLite MLflow store."""
    store = MlflowStore(f"sqlite:///{root}/mlflow.db", root / "artifacts")
    return train_champion(store, Cohorts(root / "cohorts").files(600, seed=41), **QUICK).store


def run_backend(backend: str, store: MlflowStore, root: Path, cycles: int, rng: random.Random) -> list[str]:
    problems: list[str] = []
    workdir = root / backend
    workdir.mkdir()
    writers = [
        ClinicWriter(f"w{i}", CLIENTS_PER_WRITER, MAX_SESSIONS, seed=rng.randrange(1 << 30)) for i in range(WRITERS)
    ]
    totals = {
        "requests": 0,
        "acknowledged": 0,
        "in_flight": 0,
        "in_flight_committed": 0,
        "server_errors_5xx": 0,
        "lost": 0,
        "altered": 0,
        "phantom": 0,
    }
    started = time.monotonic()
    with database(backend, workdir) as url, ApiServer(workdir, url, store.uri) as server:
        key = start_with_key(server, f"stress-{backend}")
        for cycle in range(1, cycles + 1):
            crash = crash_and_restart(server, key, writers, kill_after=rng.uniform(0.2, 3.0))
            totals["requests"] += crash.before.requests + crash.after.requests
            totals["acknowledged"] = crash.acknowledged
            totals["in_flight"] += crash.in_flight
            totals["in_flight_committed"] += crash.in_flight_committed
            totals["server_errors_5xx"] += crash.before.server_errors + crash.after.server_errors
            totals["lost"] += len(crash.lost)
            totals["altered"] += len(crash.altered)
            totals["phantom"] += len(crash.phantom)
            print(
                f"  cycle {cycle}: killed after {crash.killed_after:.1f} s, {crash.acknowledged_this_run} "
                f"acknowledged in this run, {crash.in_flight} in flight ({crash.in_flight_committed} committed); "
                f"lost {len(crash.lost)}, altered {len(crash.altered)}, phantom {len(crash.phantom)}",
                flush=True,
            )
            for name in ("lost", "altered", "phantom", "api_mismatches"):
                if getattr(crash, name):
                    problems.append(f"{backend} cycle {cycle}: {name} {getattr(crash, name)[:10]}")
            if crash.before.server_errors or crash.after.server_errors or crash.after.errors:
                problems.append(f"{backend} cycle {cycle}: {crash.before.summary()} / {crash.after.summary()}")
        for writer in writers:
            problems.extend(f"{backend}: {text}" for text in writer.unexpected)
    report(
        f"item 3 crash cycles [{backend}]",
        cycles=cycles,
        writers=WRITERS,
        **totals,
        seconds=round(time.monotonic() - started, 1),
    )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    rng = random.Random(args.seed)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="crash-cycles-") as tmp:
        root = Path(tmp)
        store = champion(root)
        for backend in args.backends.split(","):
            try:
                problems += run_backend(backend, store, root, args.cycles, rng)
            except pytest.skip.Exception as exc:
                print(f"{backend}: skipped ({exc})")
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
