"""Engine and sessions: SQLite (WAL, immediate transactions) or PostgreSQL, one code path."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from dropout_risk.features.private_files import private_file

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _create_private_sqlite_file(url: str) -> None:
    """The database file, created 0600 before SQLite opens it: it holds every clinic's sessions.

    SQLite creates its -wal and -shm files with the database file's mode, so they follow.
    """
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        private_file(database)


def _use_wal(cursor) -> None:
    """Switch the file to WAL (persistent: only a fresh file's first connections switch it).

    Connections switching a fresh file at once can deadlock on the upgrade to an exclusive
    lock; SQLite then answers one of them "database is locked" at once instead of calling its
    busy handler, so replicas starting together failed now and then. Retry for the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """An engine; on SQLite a ``writer`` takes the write lock when a transaction begins.

    Readers (key checks, risk reads, stateless scoring) use a second engine whose
    transactions begin deferred: in WAL mode they never wait for the writer.

    Statement parameters are client ids and scores: ``hide_parameters`` keeps them out of
    SQL logging and out of the text of database errors.
    """
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)  # psycopg 3, not psycopg2
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True)
    _create_private_sqlite_file(url)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the driver, open transactions (see _on_begin), and make the file
        # durable and concurrent: WAL lets readers run beside the single writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" instead of waiting for the other writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


@contextmanager
def snapshot(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only transaction that sees one consistent state of the database and blocks no writer.

    Give it a reader's factory (``make_engine(url, writer=False)``): on SQLite its transaction
    begins deferred, and in WAL mode a reader keeps the snapshot of its first read without
    taking the write lock. On PostgreSQL, REPEATABLE READ gives every statement the same snapshot.
    """
    with factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield session
