"""The monitor's reads: served risks of ended episodes, current risks of open ones, recent sessions.

Plain columns only (``sessions.probability``, ``landmark``, ``model_version``, copied from each
stored risk when it was served; migration 0004): decoding every stored risk's JSON would cost the
monitor more than all its statistics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.serving.tables import Base, Client, Clinic, SessionRecord

CLIENTS = Base.metadata.tables[Client.__tablename__]
SESSIONS = Base.metadata.tables[SessionRecord.__tablename__]
CLINICS = Base.metadata.tables[Clinic.__tablename__]
SCORE = "score:"  # prefix of the instrument columns of ``recent_sessions``


@dataclass(frozen=True)
class ClinicRef:
    id: int
    name: str


def clinics(db: Session, clinic_id: int | None = None, name: str | None = None) -> list[ClinicRef]:
    query = select(CLINICS.c.id, CLINICS.c.name).order_by(CLINICS.c.name)
    if clinic_id is not None:
        query = query.where(CLINICS.c.id == clinic_id)
    if name is not None:
        query = query.where(CLINICS.c.name == name)
    return [ClinicRef(row.id, row.name) for row in db.execute(query)]


def served_rows(db: Session, clinic_ids: list[int], since: dt.date | None) -> pd.DataFrame:
    """One row per ended episode and landmark session it reached, with the risk served there.

    Columns: clinic_id, client (the row id: never leaves the monitor), dropout (0/1), month
    (YYYY-MM of ``ended_on``, 'unknown' without one), landmark, probability, model_version,
    recalibration (the id of the clinic's recalibration the risk went through, or <NA>).
    ``since``: episodes that ended on or after it (those without a date are left out then).
    """
    s, c = SESSIONS.c, CLIENTS.c
    query = (
        select(c.clinic_id, c.id, c.status, c.ended_on, s.landmark, s.probability, s.model_version, s.recalibration_id)
        .join(CLIENTS, c.id == s.client_pk)
        .where(
            c.clinic_id.in_(clinic_ids),
            c.status.in_(("completed", "dropout")),
            s.landmark == s.session_number,
            s.probability.is_not(None),
        )
    )
    if since is not None:
        query = query.where(c.ended_on >= since)
    rows = db.execute(query).all()
    columns = ["clinic_id", "client", "status", "ended_on", "landmark", "probability", "model_version", "recalibration"]
    frame = pd.DataFrame(rows, columns=columns)
    ended = pd.to_datetime(frame["ended_on"])
    return pd.DataFrame(
        {
            "clinic_id": frame["clinic_id"].to_numpy(dtype=np.int64),
            "client": frame["client"].to_numpy(dtype=np.int64),
            "dropout": (frame["status"] == "dropout").to_numpy(dtype=float),
            "month": ended.dt.strftime("%Y-%m").fillna("unknown").astype(object),
            "landmark": frame["landmark"].to_numpy(dtype=np.int64),
            "probability": frame["probability"].to_numpy(dtype=float),
            "model_version": frame["model_version"].astype(object),
            "recalibration": frame["recalibration"].astype("Int64"),
        }
    )


def open_rows(db: Session, clinic_ids: list[int]) -> pd.DataFrame:
    """Ongoing episodes with a current risk: clinic_id, probability, model_version."""
    c = CLIENTS.c
    rows = db.execute(
        select(c.clinic_id, c.current_probability, c.current_model_version).where(
            c.clinic_id.in_(clinic_ids), c.status == "ongoing", c.current_probability.is_not(None)
        )
    ).all()
    return pd.DataFrame(rows, columns=["clinic_id", "probability", "model_version"])


def recent_sessions(db: Session, clinic_ids: list[int], since: dt.date | None) -> pd.DataFrame:
    """Sessions of clients whose first session is on or after ``since`` (all clients without it).

    Columns: clinic_id, client, session_number, session_date, days (since the previous session;
    NaN at session 1), probability (served there), and ``score:KEY`` per instrument key stored.
    """
    s, c = SESSIONS.c, CLIENTS.c
    query = (
        select(c.clinic_id, s.client_pk, s.session_number, s.session_date, s.probability, s.landmark, s.scores)
        .join(CLIENTS, c.id == s.client_pk)
        .where(c.clinic_id.in_(clinic_ids))
        .order_by(s.client_pk, s.session_number)
    )
    if since is not None:
        first = select(SESSIONS.c.client_pk).where(SESSIONS.c.session_number == 1, SESSIONS.c.session_date >= since)
        query = query.where(s.client_pk.in_(first))
    rows = db.execute(query).all()
    columns = ["clinic_id", "client", "session_number", "session_date", "probability", "landmark"]
    frame = pd.DataFrame([row[:6] for row in rows], columns=columns)
    scores = pd.DataFrame.from_records([row[6] or {} for row in rows], index=frame.index).add_prefix(SCORE)
    days = pd.to_datetime(frame["session_date"]).to_numpy(dtype="datetime64[D]").astype(np.int64).astype(float)
    previous = np.r_[np.nan, days[:-1]]
    same = np.r_[False, frame["client"].to_numpy()[1:] == frame["client"].to_numpy()[:-1]]
    frame["days"] = np.where(same, days - previous, np.nan)
    return pd.concat([frame, scores], axis=1)
