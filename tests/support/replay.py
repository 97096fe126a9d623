"""A simulated deployment: a cohort's clients recorded through the API session by session, then closed.

``replay`` goes through the API session by session; ``replay_fhir`` through the API too, a
clinic's sessions in FHIR batch Bundles (about twice as fast); ``store_scored`` writes the same
rows straight into the service's tables with the risks batch scoring gives (equal to the API's:
tests/serving/test_matches_batch.py), for tests that need many clinics and seeds, not the HTTP path.

Each client's sessions up to the model's last landmark are posted (later sessions only repeat the
last landmark's risk); an ended episode is then closed with PUT, ``ended_on`` a week after its last
session posted; an ongoing one stays open.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlalchemy.orm import Session

from dropout_risk.features.contract import require_valid
from dropout_risk.features.instruments import default_registry
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.local_update import update_probability
from dropout_risk.serving.store import CLIENTS, SESSIONS
from dropout_risk.training.simulation.cohort import Cohort
from tests.support import fhir

MAX_LANDMARK = 8
BUNDLE_CLIENTS = 80  # a Bundle of 80 clients' sessions stays under the default 1 MB request body limit


def session_bodies(sessions: pd.DataFrame, max_landmark: int = MAX_LANDMARK) -> dict[str, list[dict]]:
    """Each client's sessions (up to ``max_landmark``) as POST bodies, in order."""
    bodies: dict[str, list[dict]] = {}
    instruments = [
        c for c in sessions.columns if c not in ("client_id", "session_number", "session_date", "missed_since_last")
    ]
    for row in sessions[sessions["session_number"] <= max_landmark].itertuples(index=False):
        record = row._asdict()
        scores = {k: float(record[k]) for k in instruments if not pd.isna(record[k])}
        missed = record["missed_since_last"]
        bodies.setdefault(str(record["client_id"]), []).append(
            {
                "session_number": int(record["session_number"]),
                "session_date": str(record["session_date"]),
                "scores": scores,
                "missed_since_last": None if pd.isna(missed) else int(missed),
            }
        )
    return bodies


def replay(client, headers: dict[str, str], cohort: Cohort, prefix: str = "") -> dict[str, float]:
    """Record ``cohort`` through the API; returns each recorded client's last risk served (by client id)."""
    episodes = cohort.episodes.set_index("client_id")
    last: dict[str, float] = {}
    for client_id, bodies in session_bodies(cohort.sessions).items():
        _put_covariates(client, headers, prefix + client_id, episodes.loc[client_id])
        for body in bodies:
            response = client.post(f"/v1/clients/{prefix}{client_id}/sessions", json=body, headers=headers)
            assert response.status_code == 201, response.text
            last[prefix + client_id] = response.json()["risk"]["probability"]
        _close(client, headers, prefix + client_id, episodes.at[client_id, "status"], bodies)
    return last


def _put_covariates(client, headers: dict[str, str], client_id: str, episode: pd.Series) -> None:
    covariates = {"age": float(episode["age"]), "gender": str(episode["gender"])}
    response = client.put(f"/v1/clients/{client_id}", json=covariates, headers=headers)
    assert response.status_code == 200, response.text


def _close(client, headers: dict[str, str], client_id: str, status: str, bodies: list[dict]) -> None:
    """An ended episode closed with PUT, ``ended_on`` a week after its last session; an ongoing one stays open."""
    if status == "ongoing":
        return
    ended = dt.date.fromisoformat(bodies[-1]["session_date"]) + dt.timedelta(days=7)
    response = client.put(
        f"/v1/clients/{client_id}", json={"status": status, "ended_on": ended.isoformat()}, headers=headers
    )
    assert response.status_code == 200, response.text


def replay_fhir(client, headers: dict[str, str], cohort: Cohort) -> list[str]:
    """Record ``cohort`` through the API as ``replay`` does, its sessions in ``POST /fhir/r4`` batch Bundles.

    Covariates and closing go through ``PUT /v1/clients/{id}``; the sessions are ``fhir.resources``
    (Observations, a fulfilled Appointment, the missed appointments as no-shows), so the service counts
    the same ``missed_since_last``. Returns the client ids recorded.
    """
    episodes = cohort.episodes.set_index("client_id")
    by_client = session_bodies(cohort.sessions)
    for client_id in by_client:
        _put_covariates(client, headers, client_id, episodes.loc[client_id])
    ids = list(by_client)
    for start in range(0, len(ids), BUNDLE_CLIENTS):
        part = {c: by_client[c] for c in ids[start : start + BUNDLE_CLIENTS]}
        response = client.post("/fhir/r4", json=fhir.bundle(fhir.resources(part)), headers=headers)
        assert response.status_code == 200, response.text
        statuses = [e["response"]["status"] for e in response.json()["entry"]]
        assert all(s.startswith("2") for s in statuses), [s for s in statuses if not s.startswith("2")][:5]
    for client_id, bodies in by_client.items():
        _close(client, headers, client_id, episodes.at[client_id, "status"], bodies)
    return list(by_client)


def clinic_sample(cohort: Cohort, clinic: int, n: int) -> Cohort:
    """The ``clinic``-th block of ``n`` clients of a large simulated population: one clinic's clients.

    A small cohort simulated on its own has its intercept tuned to the dropout rate asked for, so its
    clients are not a sample of the population a model learnt from; blocks of one population are.
    """
    return clients(cohort, clinic * n, (clinic + 1) * n)


def clients(cohort: Cohort, start: int, stop: int) -> Cohort:
    """The cohort's clients ``start`` to ``stop`` (in the episodes table's order), with their sessions and truth."""
    ids = cohort.episodes["client_id"].iloc[start:stop]
    return Cohort(
        sessions=cohort.sessions[cohort.sessions["client_id"].isin(ids)].reset_index(drop=True),
        episodes=cohort.episodes[cohort.episodes["client_id"].isin(ids)].reset_index(drop=True),
        truth=cohort.truth[cohort.truth["client_id"].isin(ids)].reset_index(drop=True),
    )


def dropout_share(cohort: Cohort) -> float:
    ended = cohort.episodes[cohort.episodes["status"] != "ongoing"]
    return float(np.mean(ended["status"] == "dropout"))


def ended_on(sessions: pd.DataFrame, max_landmark: int = MAX_LANDMARK) -> dict[str, dt.date]:
    """A week after each client's last session posted (the day ``replay`` closes an ended episode)."""
    posted = sessions[sessions["session_number"] <= max_landmark]
    last = posted.groupby("client_id")["session_date"].max()
    return {str(k): dt.date.fromisoformat(str(v)[:10]) + dt.timedelta(days=7) for k, v in last.items()}


def batch_risks(
    cohort: Cohort, scorer: CompiledModel, recalibration: tuple[int, float, float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The typed sessions ``replay`` posts and the risk serving gives after each (through ``recalibration``)."""
    typed = require_valid(cohort.sessions, cohort.episodes, default_registry())
    sessions = typed.sessions[typed.sessions["session_number"] <= MAX_LANDMARK].reset_index(drop=True)
    risks = scorer.score_history(sessions, typed.episodes)
    if recalibration is not None:
        risks["risk"] = update_probability(risks["risk"].to_numpy(), recalibration[1], recalibration[2])
    return sessions, risks


def store_scored(
    db: Session,
    clinic: str,
    cohort: Cohort,
    scorer: CompiledModel,
    version: str,
    recalibration: tuple[int, float, float] | None = None,
) -> None:
    """``cohort`` as ``replay`` would leave it, written with Core inserts: clients, sessions, served risks.

    ``recalibration`` (id, intercept, slope): the clinic's, applied to every risk as serving applies it.
    """
    from dropout_risk.serving.keys import get_or_create_clinic

    registry = default_registry()
    sessions, risks = batch_risks(cohort, scorer, recalibration)
    clinic_id = get_or_create_clinic(db, clinic).id
    episodes = cohort.episodes.set_index("client_id")
    ends, ids = ended_on(cohort.sessions), {}
    current = risks.groupby("client_id").last()
    for client_id, row in episodes.iterrows():
        ended = row["status"] != "ongoing"
        ids[client_id] = db.execute(
            insert(CLIENTS).values(
                clinic_id=clinic_id,
                external_id=str(client_id),
                status=row["status"],
                covariates={"age": float(row["age"]), "gender": str(row["gender"])},
                ended_on=ends[client_id] if ended else None,
                current_probability=float(current.at[client_id, "risk"]),
                current_model_version=version,
            )
        ).inserted_primary_key[0]
    instruments = [i.key for i in registry.present_in(sessions.columns)]
    rows = [
        {
            "client_pk": ids[s.client_id],
            "session_number": int(s.session_number),
            "session_date": s.session_date.date(),
            "scores": {k: float(getattr(s, k)) for k in instruments if not pd.isna(getattr(s, k))},
            "payload_hash": "",
            "risk": {},
            "probability": float(r),
            "landmark": int(k),
            "model_version": version,
            "recalibration_id": recalibration[0] if recalibration else None,
        }
        for s, r, k in zip(sessions.itertuples(), risks["risk"], risks["landmark"], strict=True)
    ]
    db.execute(insert(SESSIONS), rows)
