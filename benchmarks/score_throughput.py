"""POST /v1/score throughput against `mlflow models serve` serving the same model, side by side.

Target (issue): our endpoint, given a client's whole *history*, serves at least 5x the
requests per second of MLflow's scoring server given the client's *precomputed feature
row*. Both servers run here as real processes (one uvicorn worker each, loopback only),
are loaded by the same client (a few keep-alive connections in threads) for the same
wall time, one after the other, and every response is checked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import httpx
import mlflow

SECONDS = 15.0
CONNECTIONS = 4
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def load(url: str, body: dict, headers: dict, check) -> tuple[float, int]:
    """Requests per second over SECONDS with CONNECTIONS keep-alive clients; every response checked."""
    counts = [0] * CONNECTIONS
    stop = time.monotonic() + SECONDS
    errors: list[str] = []

    def worker(i: int) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                response = client.post(url, json=body, headers=headers)
                if response.status_code != 200 or not check(response.json()):
                    errors.append(str(response.status_code))
                    return
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"failed responses: {errors[:3]}")
    return sum(counts) / (time.monotonic() - start), sum(counts)


def promoted_champion(root: Path):
    """A model trained on a simulated 2,000-client cohort (seed 6) in the store MLFLOW_TRACKING_URI names,
    promoted as champion; the cohort and the training outcome. Shared with workers_scaling.py."""
    from dropout_risk.training.jobs.promote import promote
    from dropout_risk.training.jobs.train import train
    from dropout_risk.training.settings import TrainingConfig, TrainingSettings
    from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    cohort = simulate_cohort(SimulationConfig(n_clients=2000, seed=6))
    paths = write_cohort(cohort, root / "data")
    settings = TrainingSettings(
        training=TrainingConfig(artifact_location=str(root / "artifacts"), bootstrap_resamples=20, folds=3)
    )
    outcome = train(paths["sessions"], paths["episodes"], settings)
    promote(settings, force=True, reason="benchmark")
    return cohort, outcome


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from dropout_risk.models.registry import load_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # `mlflow models serve` execs `uvicorn` from PATH: make it this environment's.
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
            "DROPOUT_RISK_DATABASE_URL": f"sqlite:///{root}/api.db",
            # Throughput, not the per-key limits: one key on 4 connections would be refused by them.
            "DROPOUT_RISK_SERVING__RATE_LIMIT": "0",
            "DROPOUT_RISK_SERVING__MAX_INFLIGHT_PER_KEY": "0",
        }
        os.environ.update(env)
        cohort, outcome = promoted_champion(root)
        model = load_model(f"models:/dropout-risk/{outcome.model_version}")

        # One client with five sessions: our body is its history, MLflow's its latest feature row.
        sessions = cohort.sessions
        client_id = sessions.groupby("client_id").size().loc[lambda n: n >= 5].index[0]
        rows = sessions[(sessions["client_id"] == client_id) & (sessions["session_number"] <= 5)]
        history = [
            {
                "session_number": int(r.session_number),
                "session_date": r.session_date,
                "scores": {"ors": float(r.ors), "srs": float(r.srs)},
                "missed_since_last": int(r.missed_since_last),
            }
            for r in rows.itertuples()
        ]
        features = model.build_features(*_typed(rows, cohort.episodes[cohort.episodes["client_id"] == client_id]))
        example = model.example_input(features.tail(1))
        row = json.loads(example.to_json(orient="split", index=False))
        mlflow_body = {"dataframe_split": row}
        expected = float(model.predict_features(features.tail(1))[0])

        ours_port, mlflow_port = free_port(), free_port()
        key = (
            subprocess.run(
                [str(BIN / "dropout-risk"), "keys", "create", "--clinic", "bench"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        servers = [
            subprocess.Popen(
                [str(BIN / "dropout-risk"), "serve", "--port", str(ours_port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    f"models:/dropout-risk/{outcome.model_version}",
                    "--env-manager",
                    "local",
                    "--port",
                    str(mlflow_port),
                    "--host",
                    "127.0.0.1",
                    "--workers",
                    "1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            wait_ready(f"http://127.0.0.1:{ours_port}/readyz", servers[0])
            wait_ready(f"http://127.0.0.1:{mlflow_port}/ping", servers[1])
            ours_rps, ours_n = load(
                f"http://127.0.0.1:{ours_port}/v1/score",
                {"sessions": history},
                {"Authorization": f"Bearer {key}"},
                lambda body: 0 <= body["risk"]["probability"] <= 1,
            )
            mlflow_rps, mlflow_n = load(
                f"http://127.0.0.1:{mlflow_port}/invocations",
                mlflow_body,
                {},
                lambda body: abs(body["predictions"][0]["risk"] - expected) < 1e-9,
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    print(f"model={outcome.report['model_kind']} connections={CONNECTIONS} seconds_each={SECONDS:.0f}")
    print(f"ours_history_rps={ours_rps:.0f} (n={ours_n}) mlflow_feature_row_rps={mlflow_rps:.0f} (n={mlflow_n})")
    print(f"ratio={ours_rps / mlflow_rps:.2f} target>=5")


def _typed(rows, episodes):
    from dropout_risk.features.contract import validate_contract
    from dropout_risk.features.instruments import default_registry

    data = validate_contract(rows, episodes, default_registry())
    return data.sessions, data.episodes


if __name__ == "__main__":
    main()
