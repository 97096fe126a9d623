"""One model version across processes: a client's answers never go back to an older one.

Each process polls the registry on its own, so after a promotion one process serves the
new version while another, which has not polled yet, still serves the old one; a client
whose requests the balancer spreads over both would see the new version, then the old.

So the processes share one row per model in ``served_models``: the version last switched
to, and a generation that grows at each switch. A process writes the row before it answers
with a version it has just loaded (``announce``), and before each scoring request reads it
(``read``, one primary-key read); finding a higher generation than its own it loads that
version first (``ModelHolder.catch_up``). A client's next request, whichever process
answers it, therefore starts after the row named the version of its last answer.

A rollback (the alias moved back to an older version) is a switch like any other: a new
generation, which every process follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dropout_risk.serving.tables import ServedModel

_TABLE = cast(Table, ServedModel.__table__)


@dataclass(frozen=True)
class Served:
    version: str
    generation: int


def read(connection: Connection, name: str) -> Served | None:
    row = connection.execute(select(_TABLE.c.version, _TABLE.c.generation).where(_TABLE.c.name == name)).first()
    return None if row is None else Served(row.version, row.generation)


def announce(engine: Engine, name: str, version: str) -> Served:
    """Record that ``version`` is served from now on; its generation (a new one if it was another version)."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as connection:
        # The first process creates the row; one starting beside it finds it there (no IntegrityError).
        connection.execute(
            insert(_TABLE)
            .values(name=name, version=version, generation=1)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        # Only a different version moves the generation: processes loading the same one agree on it.
        connection.execute(
            update(_TABLE)
            .where(_TABLE.c.name == name, _TABLE.c.version != version)
            .values(version=version, generation=_TABLE.c.generation + 1)
        )
        served = read(connection, name)
    assert served is not None  # written just above, in this transaction
    return served
