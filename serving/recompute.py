"""After a champion swap, the caseload follows: ongoing clients' current risks recomputed with the new model.

A client's stored current risk is the one served at its last session; after a promotion the caseload
would rank clients by the old model until each one's next session. ``recompute_after_swaps`` watches
the version this process serves and, when it changes, rescores the ongoing clients whose current
risk came from another version, ``BATCH`` clients at a time, each client in a transaction of its own
that locks its row (``FOR UPDATE`` on PostgreSQL; SQLite's write lock), so a session recorded
meanwhile is never overwritten by an older history: a client whose current risk is already the new
version's is skipped. One process of all workers and replicas does it (``serving.leader``).
Between batches the task yields, and the work runs in a worker thread: requests
are never blocked for more than one client's rescoring. The stored risk of every session stays as it
was served (immutable); the caseload's ``model_version`` says which model each current risk is from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.serving.db import transaction
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.recalibration import for_clinic
from dropout_risk.serving.scoring import ScoringContext, score_history
from dropout_risk.serving.settings import RiskBands
from dropout_risk.serving.store import CLIENTS, set_current_risk, stored_sessions

log = logging.getLogger("dropout_risk.recompute")
BATCH = 50


@dataclass
class RecomputeState:
    """What the last recompute did (``/readyz`` shows it): the version, clients done, still to do."""

    version: str | None = None
    done: int = 0
    remaining: int = 0
    seconds: float = 0.0


def _stale(db: Session, version: str, limit: int) -> list[int]:
    c = CLIENTS.c
    query = (
        select(c.id)
        .where(c.status == "ongoing", c.current_model_version.is_not(None), c.current_model_version != version)
        .order_by(c.id)
        .limit(limit)
    )
    return list(db.scalars(query))


def _rescore(db: Session, client_pk: int, context: ScoringContext) -> bool:
    """One client's current risk with ``context``'s version; False if it already has it or is no longer open."""
    query = select(CLIENTS.c.clinic_id, CLIENTS.c.status, CLIENTS.c.covariates, CLIENTS.c.current_model_version)
    query = query.where(CLIENTS.c.id == client_pk)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = db.execute(query).one()
    sessions = stored_sessions(db, client_pk)
    if row.status != "ongoing" or row.current_model_version == context.version or not sessions:
        return False
    scoring = for_clinic(db, context, row.clinic_id)
    risk = score_history(scoring, [s.history_row() for s in sessions], dict(row.covariates or {})).risk
    set_current_risk(db, client_pk, risk, sessions[-1].session_date)
    return True


def recompute(
    factory: sessionmaker[Session], loaded: LoadedModel, registry: InstrumentRegistry, bands: RiskBands
) -> list[int]:
    """One batch: up to ``BATCH`` stale clients rescored with ``loaded``; the ones looked at (empty: done)."""
    context = ScoringContext.of(loaded, registry, bands)
    with factory() as db:
        batch = _stale(db, loaded.version, BATCH)
    for client_pk in batch:
        with transaction(factory) as db:
            _rescore(db, client_pk, context)
    return batch


async def recompute_after_swaps(app: FastAPI, interval: float) -> None:
    """Every ``interval`` seconds: if the served version changed since the last pass, recompute until done."""
    state: RecomputeState = app.state.recompute
    while True:
        loaded = app.state.holder.current
        # One process of all workers and replicas does it (serving.leader); the others look again next time.
        if loaded is not None and loaded.version != state.version and await asyncio.to_thread(app.state.leader.held):
            started, state.done = time.perf_counter(), 0
            try:
                while batch := await asyncio.to_thread(
                    recompute, app.state.sessions, loaded, app.state.registry, app.state.settings.serving.bands
                ):
                    state.done += len(batch)
                    await asyncio.sleep(0)  # let requests in between batches
                    if app.state.holder.current is not loaded:
                        break  # swapped again: the next pass recomputes with that one
                else:
                    state.version, state.seconds = loaded.version, time.perf_counter() - started
                    log.info(
                        "current risks recomputed with version %s: %d clients in %.1f s",
                        loaded.version,
                        state.done,
                        state.seconds,
                    )
            except Exception as exc:  # the database away for a moment: the next pass starts again
                log.warning("recompute with version %s failed (%s); retrying", loaded.version, type(exc).__name__)
        await asyncio.sleep(interval)
