"""The token ids (issuer and jti) seen, in the database until their token expires: a replay is refused.

Shared by every process on the database, so a token replayed to another worker or replica is refused too.
Only a digest of the issuer and jti is stored.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import Engine, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dropout_risk.serving.tables import Base, CdsTokenId

TOKEN_IDS = Base.metadata.tables[CdsTokenId.__tablename__]


def first_use(engine: Engine, issuer: str, jti: str, expires_at: float) -> bool:
    """Record the token's id; False if it was recorded before (and has not expired since)."""
    digest = hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as connection:
        connection.execute(delete(TOKEN_IDS).where(TOKEN_IDS.c.expires_at < time.time()))
        result = connection.execute(
            insert(TOKEN_IDS)
            .values(digest=digest, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["digest"])
        )
    return bool(result.rowcount)
