"""Which process runs the service's periodic jobs: one of all workers and replicas, and another if it dies.

Recomputing current risks after a swap and refreshing the monitoring gauges read (and write) the
whole database; N processes doing them would do them N times. On PostgreSQL the process that
holds a session-level advisory lock runs them: it keeps the lock on a connection of its own, so a
process killed with kill -9 loses it with its connection and the next process to ask takes it over
at its next pass. SQLite serves one process (several workers on SQLite are refused at start), so
that process always leads. Webhook deliveries need no leader: every process claims due rows with
``FOR UPDATE SKIP LOCKED`` (``serving.webhooks.outbox``).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

log = logging.getLogger("dropout_risk.leader")
# Beside serving.migrate.MIGRATION_LOCK ("drkm"): "drkj", the periodic jobs.
JOBS_LOCK = 0x64726B6A


class Leadership:
    def __init__(self, engine: Engine, key: int = JOBS_LOCK):
        # A connection of its own, never pooled: closing it must close it, and the lock with it (a pooled
        # connection handed back would keep the lock for whichever request took it next).
        self.engine = (
            create_engine(engine.url, poolclass=NullPool, hide_parameters=True)
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.key = key
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # asked from worker threads of one process

    def held(self) -> bool:
        """True when this process leads now: it kept the lock, or has just taken it (never blocks)."""
        if self.engine.dialect.name != "postgresql":
            return True
        with self._lock:
            if self._connection is not None and self._alive(self._connection):
                return True
            self._connection = self._try_take()
            return self._connection is not None

    def release(self) -> None:
        """Give the lead up (at shutdown): closing the connection frees the lock for another process."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _try_take(self) -> Connection | None:
        try:
            connection = self.engine.connect()
        except DBAPIError:
            return None
        try:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            connection.commit()  # the lock outlives the transaction; the connection does not sit idle in one
        except DBAPIError:
            connection.close()
            return None
        if not taken:
            connection.close()
            return None
        log.info("this process runs the periodic jobs (recompute, monitoring gauges)")
        return connection

    @staticmethod
    def _alive(connection: Connection) -> bool:
        """The lock lives as long as its connection: a connection lost (a database restart) lost it too."""
        try:
            connection.execute(text("SELECT 1"))
            connection.commit()
            return True
        except DBAPIError:
            connection.close()
            return False
