"""The monitor on 100,000 ended episodes (issue 13: target < 30 s), on SQLite and optionally PostgreSQL.

Builds a service database with ``--episodes`` ended episodes (default 100,000) spread over ten
clinics, plus 5% open ones, each with its landmark sessions (ORS and SRS scores, the risk served
and its version, as the API stores them since migration 0004), and a reference profile fitted on
a simulated cohort. Then times ``serving.monitoring.service.monitor`` over every clinic and the
whole service (what the admin's GET /v1/monitoring and ``dropout-risk monitor`` run), twice.

    .venv/bin/python benchmarks/monitor_speed.py [--episodes 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time

import numpy as np
from sqlalchemy import insert

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import require_valid
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import infer_spec
from dropout_risk.models.profile import fit_profile
from dropout_risk.serving.db import make_engine, session_factory
from dropout_risk.serving.keys import get_or_create_clinic
from dropout_risk.serving.migrate import upgrade
from dropout_risk.serving.monitoring.service import ServedModelFacts, monitor
from dropout_risk.serving.settings import MonitoringConfig
from dropout_risk.serving.store import CLIENTS, SESSIONS
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort

CLINICS, BATCH = 10, 20_000


def _profile():
    cohort = simulate_cohort(SimulationConfig(n_clients=3000, seed=5))
    typed = require_valid(cohort.sessions, cohort.episodes, default_registry())
    spec = infer_spec(typed.sessions, typed.episodes, default_registry(), FeatureConfig())
    return fit_profile(typed.sessions, spec, np.random.default_rng(1).beta(2, 6, 20_000))


def _fill(url: str, episodes: int) -> int:
    """Write the clinics, clients and sessions; returns the number of session rows."""
    rng = np.random.default_rng(0)
    engine = make_engine(url)
    upgrade(engine)
    total = int(episodes / 0.95)
    lengths = np.minimum(rng.geometric(0.2, total), 8)
    start = dt.date(2025, 1, 6)
    rows = 0
    with session_factory(engine)() as db:
        clinics = [get_or_create_clinic(db, f"clinic-{i:02d}").id for i in range(CLINICS)]
        for first in range(0, total, BATCH):
            ids = range(first, min(first + BATCH, total))
            status = rng.choice(["dropout", "completed", "ongoing"], len(ids), p=[0.24, 0.71, 0.05])
            clients = [
                {
                    "clinic_id": clinics[i % CLINICS],
                    "external_id": f"C{i:07d}",
                    "status": s,
                    "covariates": {},
                    "ended_on": None if s == "ongoing" else start + dt.timedelta(days=int(i % 600) + 60),
                    "current_probability": float(rng.beta(2, 6)),
                    "current_model_version": "1",
                }
                for i, s in zip(ids, status, strict=True)
            ]
            keys = [r.id for r in db.execute(insert(CLIENTS).returning(CLIENTS.c.id), clients)]
            sessions = [
                {
                    "client_pk": key,
                    "session_number": k,
                    "session_date": start + dt.timedelta(days=int(i % 600) + 7 * (k - 1)),
                    "scores": {"ors": round(float(rng.normal(19, 7)), 1), "srs": round(float(rng.normal(36, 3)), 1)},
                    "payload_hash": "",
                    "risk": {},
                    "probability": float(rng.beta(2, 6)),
                    "landmark": k,
                    "model_version": "1",
                }
                for key, i in zip(keys, ids, strict=True)
                for k in range(1, int(lengths[i]) + 1)
            ]
            db.execute(insert(SESSIONS), sessions)
            rows += len(sessions)
        db.commit()
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--postgres", help="a PostgreSQL database URL to measure as well (its tables are created)")
    args = parser.parse_args()
    facts = ServedModelFacts("1", 0.66, _profile())
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/monitor.db", **({"postgresql": args.postgres} if args.postgres else {})}
        for backend, url in urls.items():
            started = time.perf_counter()
            sessions = _fill(url, args.episodes)
            print(
                f"{backend}: wrote {args.episodes:,} ended episodes, {sessions:,} sessions in "
                f"{time.perf_counter() - started:.1f} s"
            )
            engine = make_engine(url, writer=False)
            for run in (1, 2):
                with session_factory(engine)() as db:
                    started = time.perf_counter()
                    report = monitor(db, facts, MonitoringConfig(), whole_service=True)
                    elapsed = time.perf_counter() - started
                assert report.service is not None and report.service.current is not None
                print(
                    f"{backend}: monitor run {run}: {elapsed:.2f} s for {report.service.current.episodes:,} "
                    f"ended episodes in {len(report.clinics)} clinics (target < 30 s)"
                )
            engine.dispose()
    print(f"load average {os.getloadavg()[0]:.1f} (2 shared cores)")


if __name__ == "__main__":
    main()
