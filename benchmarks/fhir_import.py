"""POST /fhir/r4 with a Bundle of 200 clients x 8 sessions: time to import, and equality with /v1.

Target (issue 15): under 5 s, storing exactly the sessions and risks the same data sent through
POST /v1/clients/{id}/sessions stores. Trains a small model into a throwaway MLflow store
(score_throughput.promoted_champion), runs the app in-process on a SQLite file (WAL) with
Starlette's TestClient, sends the Bundle (Observations for ORS, SRS and half the sessions'
PHQ-9, an Appointment per session and one per no-show) as one batch, then the same Bundle again
(every entry "200 OK", nothing written), then the same sessions one by one through /v1 into
another clinic, and compares what the two clinics stored.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

CLIENTS = 200
SESSIONS = 8


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from fastapi.testclient import TestClient

    from tests.support import fhir

    with tempfile.TemporaryDirectory() as tmp:
        app, keys = _app_with_two_clinics(Path(tmp))
        data = fhir.sessions(CLIENTS, SESSIONS, seed=1)
        body = json.dumps(fhir.bundle(fhir.resources(data), "batch"))
        headers = {**keys["fhir"], "Content-Type": "application/fhir+json"}
        with TestClient(app) as client:
            first = _timed(lambda: client.post("/fhir/r4", content=body, headers=headers))
            again = _timed(lambda: client.post("/fhir/r4", content=body, headers=headers))
            start = time.perf_counter()
            for client_id, payloads in data.items():
                for payload in payloads:
                    answer = client.post(f"/v1/clients/{client_id}/sessions", json=payload, headers=keys["v1"])
                    assert answer.status_code == 201, answer.text
            v1_seconds = time.perf_counter() - start
        statuses = [e["response"]["status"] for e in first[1]["entry"]]
        resent = {e["response"]["status"] for e in again[1]["entry"]}
        same = _stored(app, "fhir") == _stored(app, "v1")
    entries = len(statuses)
    print(
        f"bundle: {CLIENTS} clients x {SESSIONS} sessions, {entries} entries, {len(body) / 1e6:.1f} MB; "
        f"created={statuses.count('201 Created')} other={entries - statuses.count('201 Created')}"
    )
    print(f"import_seconds={first[0]:.2f} (target < 5) resend_seconds={again[0]:.2f} resend_statuses={sorted(resent)}")
    print(f"v1_one_by_one_seconds={v1_seconds:.2f} same_sessions_and_risks_as_v1={same}")


def _app_with_two_clinics(root: Path):
    """A champion in a throwaway store; the app on SQLite with ORS and SRS codes; keys of clinics fhir and v1."""
    from score_throughput import promoted_champion

    from dropout_risk.serving.app import create_app
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.keys import create_key
    from dropout_risk.serving.migrate import upgrade
    from dropout_risk.serving.settings import FhirConfig, ServingConfig, ServingSettings
    from tests.support.fhir import CLINIC_CODES

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    promoted_champion(root)
    # The Bundle is 2.5 MB: over the default 1 MiB body limit, which a clinic sending such Bundles raises.
    serving = ServingConfig(poll_interval_seconds=3600, rate_limit=0, max_body_bytes=64 * 1024 * 1024)
    url = f"sqlite:///{root}/api.db"
    app = create_app(
        ServingSettings(database_url=url, serving=serving, fhir=FhirConfig(codes=CLINIC_CODES)), poll=False
    )
    upgrade(app.state.engine)
    with transaction(app.state.sessions) as db:
        keys = {clinic: {"Authorization": f"Bearer {create_key(db, clinic)[0]}"} for clinic in ("fhir", "v1")}
    return app, keys


def _timed(call):
    start = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text[:500]
    return elapsed, response.json()


def _stored(app, clinic: str) -> dict:
    from dropout_risk.serving.tables import Client, Clinic, SessionRecord

    columns = (SessionRecord.session_date, SessionRecord.missed_since_last, SessionRecord.scores, SessionRecord.risk)
    with app.state.sessions() as db:
        rows = db.execute(
            select(Client.external_id, SessionRecord.session_number, *columns)
            .join(Client, Client.id == SessionRecord.client_pk)
            .join(Clinic, Clinic.id == Client.clinic_id)
            .where(Clinic.name == clinic)
        ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


if __name__ == "__main__":
    main()
