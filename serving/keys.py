"""API keys: random, shown once, stored only as a SHA-256 digest.

A key carries 256 bits of randomness, so a fast hash is enough: there is no
dictionary to guess from, and lookup stays a single indexed query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from dropout_risk.serving.tables import ApiKey, Clinic

KEY_PREFIX = "drk_"
PREFIX_LENGTH = 12  # "drk_" + 8 characters: enough to tell keys apart in a listing, useless to an attacker


class KeyError_(LookupError):
    pass


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def get_or_create_clinic(session: Session, name: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.name == name))
    if clinic is None:
        clinic = Clinic(name=name)
        session.add(clinic)
        session.flush()
    return clinic


def create_key(session: Session, clinic_name: str) -> tuple[str, ApiKey]:
    """A new key for the clinic (created if new); the plaintext is returned once and never stored."""
    clinic = get_or_create_clinic(session, clinic_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(clinic_id=clinic.id, key_hash=digest(key), prefix=key[:PREFIX_LENGTH])
    session.add(record)
    session.flush()
    return key, record


def revoke_key(session: Session, prefix: str) -> int:
    """Revoke every active key starting with ``prefix``; returns how many."""
    if len(prefix) < PREFIX_LENGTH:
        raise KeyError_(f"give the key's first {PREFIX_LENGTH} characters (as `keys list` shows them)")
    keys = session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix[:PREFIX_LENGTH], ApiKey.revoked_at.is_(None))
    ).all()
    now = dt.datetime.now(dt.UTC)
    for key in keys:
        key.revoked_at = now
    return len(keys)


def list_keys(session: Session) -> list[tuple[str, str, dt.datetime, dt.datetime | None]]:
    rows = session.execute(
        select(ApiKey.prefix, Clinic.name, ApiKey.created_at, ApiKey.revoked_at)
        .join(Clinic, Clinic.id == ApiKey.clinic_id)
        .order_by(ApiKey.id)
    ).all()
    return [(prefix, clinic, created, revoked) for prefix, clinic, created, revoked in rows]


_KEYS = ApiKey.__table__


def clinic_for_key(connection: Session | Connection, key: str) -> int | None:
    """The clinic id of an active key, or None (unknown or revoked: the caller cannot tell which)."""
    row = connection.execute(
        select(_KEYS.c.clinic_id, _KEYS.c.revoked_at).where(_KEYS.c.key_hash == digest(key))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return row.clinic_id
