"""Building something once per test run when pytest-xdist runs the suite on several worker processes.

Each worker has its own session, so a session fixture would be built once per worker; what is
expensive and only read (a migrated template, a trained champion) is built by the first worker
that needs it, in a directory every worker of the run shares, under a file lock.

`make test` runs the suite as two pytest invocations (the parallel part, then the tests that must
run alone); it names one directory for both in ``DROPOUT_RISK_TEST_SHARED`` (emptied first), so the
second invocation reads the champion and the two models the first one trained instead of training
them again.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def run_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run builds what its processes share: ``DROPOUT_RISK_TEST_SHARED`` when set, else the
    run's base temporary directory, shared by its xdist workers (each has a folder inside it)."""
    shared = os.environ.get("DROPOUT_RISK_TEST_SHARED")
    if shared:
        Path(shared).mkdir(parents=True, exist_ok=True)
        return Path(shared)
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock`` (a file, created if needed) against every other process of the run."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
