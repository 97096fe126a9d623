"""Per-clinic recalibrations as stored (table ``recalibrations``): read the active one, store, revert.

A clinic's active recalibration is its newest row for the served model version that is not
reverted. It applies to that version only: a new champion starts without one (the monitor
says the clinic needs its own), and other clinics never see it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dropout_risk.serving.scoring import AppliedRecalibration, ScoringContext
from dropout_risk.serving.tables import Recalibration


def active(db: Session, clinic_id: int, version: str) -> Recalibration | None:
    return db.scalar(
        select(Recalibration)
        .where(
            Recalibration.clinic_id == clinic_id,
            Recalibration.model_version == version,
            Recalibration.reverted_at.is_(None),
        )
        .order_by(Recalibration.id.desc())
        .limit(1)
    )


def for_clinic(db: Session, scoring: ScoringContext, clinic_id: int) -> ScoringContext:
    """``scoring`` with the clinic's active recalibration of its version (unchanged without one)."""
    row = active(db, clinic_id, scoring.version)
    if row is None:
        return scoring
    return dataclasses.replace(scoring, recalibration=AppliedRecalibration(row.id, row.intercept, row.slope))


def newest_by_clinic(db: Session, clinic_ids: list[int]) -> dict[int, Recalibration]:
    """Each clinic's newest recalibration that is not reverted, whatever its model version."""
    rows = db.scalars(
        select(Recalibration)
        .where(Recalibration.clinic_id.in_(clinic_ids), Recalibration.reverted_at.is_(None))
        .order_by(Recalibration.id)
    )
    return {row.clinic_id: row for row in rows}


def store(db: Session, row: Recalibration) -> Recalibration:
    """Add ``row`` as the clinic's active recalibration of its version; the previous one is reverted."""
    previous = active(db, row.clinic_id, row.model_version)
    if previous is not None:
        _revert(db, previous.id, f"replaced by a new recalibration ({row.created_by})")
    db.add(row)
    db.flush()
    return row


def revert(db: Session, clinic_id: int, version: str, by: str) -> Recalibration | None:
    """Revert the clinic's active recalibration of ``version``; the one reverted, or None if none."""
    row = active(db, clinic_id, version)
    if row is not None:
        _revert(db, row.id, by)
    return row


def _revert(db: Session, recalibration_id: int, by: str) -> None:
    db.execute(
        update(Recalibration)
        .where(Recalibration.id == recalibration_id)
        .values(reverted_at=dt.datetime.now(dt.UTC), reverted_by=by)
    )
