"""Closing the loop: the service's stored sessions and episodes, written as the training contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.features.private_files import private_dir, private_file
from dropout_risk.serving.covariates import covariate_problems
from dropout_risk.serving.tables import Client, Clinic, SessionRecord

# OWASP's CSV injection list: a spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as formulas, prefixed with a single quote (OWASP).

    Only text: numbers (a covariate of -3) stay numbers. Applied to CSV output only; a Parquet
    file keeps the values as stored. A client id changes the same way in both files, so they still join.
    """

    def cell(value: object) -> object:
        return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(cell)
    return out


@dataclass(frozen=True)
class Exported:
    paths: dict[str, Path]
    skipped: int  # clients left out because what is stored for them breaks the covariate rules


def export_contract(db: Session, out_dir: Path, clinic: str | None = None) -> dict[str, Path]:
    """Write sessions.csv and episodes.csv (data contract v1); the paths written (see ``export_clients``)."""
    return export_clients(db, out_dir, clinic).paths


def export_clients(db: Session, out_dir: Path, clinic: str | None = None) -> Exported:
    """Write sessions.csv and episodes.csv (data contract v1) for one clinic or all of them.

    Client identifiers are the clinics' own; where two clinics use the same one,
    every exported id is prefixed with its clinic name so the file stays unique.
    A client whose stored covariates break today's rules (stored before they were
    enforced: text that is not valid Unicode, a reserved column name, an absurd
    number) is left out with its sessions and counted, so one bad row cannot fail
    every clinic's export.
    """
    clients_query = select(Client, Clinic.name).join(Clinic, Clinic.id == Client.clinic_id)
    if clinic is not None:
        clients_query = clients_query.where(Clinic.name == clinic)
    everyone = db.execute(clients_query.order_by(Clinic.name, Client.external_id)).all()
    clients = [(c, name) for c, name in everyone if next(covariate_problems(c.covariates or {}), None) is None]
    clashes = pd.Series([c.external_id for c, _ in clients]).duplicated().any()
    export_id = {c.id: (f"{name}/{c.external_id}" if clashes else c.external_id) for c, name in clients}

    episodes = pd.DataFrame(
        [
            {
                "client_id": export_id[c.id],
                "status": c.status,
                "clinic_id": name,
                "ended_on": c.ended_on.isoformat() if c.ended_on else None,
                **(c.covariates or {}),
            }
            for c, name in clients
        ],
        columns=["client_id", "status", "clinic_id", "ended_on"] if not clients else None,
    )
    records = db.scalars(
        select(SessionRecord)
        .where(SessionRecord.client_pk.in_(list(export_id)))
        .order_by(SessionRecord.client_pk, SessionRecord.session_number)
    ).all()
    sessions = pd.DataFrame(
        [
            {
                "client_id": export_id[r.client_pk],
                "session_number": r.session_number,
                "session_date": r.session_date.isoformat(),
                "missed_since_last": r.missed_since_last,
                **r.scores,
            }
            for r in records
        ],
        columns=["client_id", "session_number", "session_date", "missed_since_last"] if not records else None,
    )
    if len(sessions):
        sessions["missed_since_last"] = sessions["missed_since_last"].astype("Int64")
        sessions = sessions.sort_values(["client_id", "session_number"], kind="stable")
    # A client recorded with PUT but no session yet has no place in the contract (every episode needs sessions).
    episodes = episodes[episodes["client_id"].isin(set(sessions["client_id"]))].sort_values("client_id")
    private_dir(out_dir)
    paths = {"sessions": private_file(out_dir / "sessions.csv"), "episodes": private_file(out_dir / "episodes.csv")}
    neutralise_formulas(sessions).to_csv(paths["sessions"], index=False)
    neutralise_formulas(episodes).to_csv(paths["episodes"], index=False)
    return Exported(paths, skipped=len(everyone) - len(clients))
