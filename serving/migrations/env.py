"""Alembic environment: runs on the connection the service hands it (see serving/migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from dropout_risk.serving.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # the alembic command line: build an engine from the URL option
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("set sqlalchemy.url in the alembic configuration (or run through serving.migrate)")
        engine = create_engine(url)
        with engine.connect() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
