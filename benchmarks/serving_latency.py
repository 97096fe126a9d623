"""Recording a session and returning its risk: latency in-process, concurrency 1, SQLite.

Target (issue): p50 <= 5 ms, p99 <= 25 ms. Trains a small model into a throwaway
MLflow store, promotes it, starts the app in-process (FastAPI TestClient, lifespan
running, SQLite file in WAL mode) and times POST /v1/clients/{id}/sessions for
realistic histories (8 sessions per client), one request at a time.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np

CLIENTS = 250
SESSIONS = 8


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.db import transaction
    from serving.keys import create_key
    from serving.settings import ServingConfig, ServingSettings
    from training.promote import promote
    from training.settings import TrainingConfig, TrainingSettings
    from training.simulate import SimulationConfig, simulate_cohort, write_cohort
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        paths = write_cohort(simulate_cohort(SimulationConfig(n_clients=2000, seed=4)), root / "data")
        settings = TrainingSettings(training=TrainingConfig(artifact_location=str(root / "artifacts"),
                                                            bootstrap_resamples=20, folds=3))
        outcome = train(paths["sessions"], paths["episodes"], settings)
        promote(settings, force=True, reason="benchmark")
        app = create_app(ServingSettings(database_url=f"sqlite:///{root}/api.db",
                                         serving=ServingConfig(poll_interval_seconds=3600)), poll=False)
        rng = np.random.default_rng(0)
        latencies = []
        with TestClient(app) as client:
            with transaction(app.state.sessions) as db:
                key, _ = create_key(db, "bench")
            headers = {"Authorization": f"Bearer {key}"}
            for c in range(CLIENTS):
                for n in range(1, SESSIONS + 1):
                    body = {"session_number": n, "session_date": f"2025-{1 + n:02d}-{1 + c % 27:02d}",
                            "scores": {"ors": round(float(rng.uniform(5, 35)), 1),
                                       "srs": round(float(rng.uniform(25, 40)), 1)},
                            "missed_since_last": int(rng.poisson(0.3))}
                    start = time.perf_counter()
                    response = client.post(f"/v1/clients/c{c}/sessions", json=body, headers=headers)
                    latencies.append(time.perf_counter() - start)
                    assert response.status_code == 201, response.text
    ms = np.array(latencies) * 1000
    print(f"model={outcome.report['model_kind']} requests={len(ms)} (clients={CLIENTS} x sessions={SESSIONS})")
    print(f"p50_ms={np.percentile(ms, 50):.2f} p90_ms={np.percentile(ms, 90):.2f} "
          f"p99_ms={np.percentile(ms, 99):.2f} mean_ms={statistics.fmean(ms):.2f} "
          f"target p50<=5 p99<=25")


if __name__ == "__main__":
    main()
