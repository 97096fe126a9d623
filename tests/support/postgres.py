"""Throwaway databases on the local PostgreSQL server (skipped where it is not running, unless required)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get("DROPOUT_RISK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = "DROPOUT_RISK_REQUIRE_POSTGRES"  # set (as CI does): an unreachable server fails instead of skipping


@contextmanager
def fresh_postgres_database(prefix: str = "dropout_risk_test") -> Iterator[str]:
    """A database of its own on the local PostgreSQL server (dropped afterwards); its SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"
        if os.environ.get(REQUIRED):
            pytest.fail(f"{reason} (required here: {REQUIRED} is set)")
        pytest.skip(reason)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
