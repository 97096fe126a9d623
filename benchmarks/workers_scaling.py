"""POST /v1/score with `dropout-risk serve --workers N` on PostgreSQL, N = 1, 2 and 4, side by side in one run.

Issue 17: does throughput scale with worker processes? Trains a small model into a throwaway
MLflow store, creates a throwaway PostgreSQL database (127.0.0.1:5432, user postgres, or
DROPOUT_RISK_TEST_POSTGRES), then for each N starts a real `serve --workers N`, waits until
every worker answers, and loads it for SECONDS with CONNECTIONS keep-alive connections
spread over LOADERS client processes (one Python process's threads would be held back by
its own GIL). Every response is checked (200 and a probability). Prints requests/s, p50
and p99 per N, the ratio to one worker, and the load average of the machine while it ran:
the load generator shares the machine's cores with the servers.

    .venv/bin/python benchmarks/workers_scaling.py
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import httpx
import numpy as np

WORKERS = (1, 2, 4)
SECONDS = 15.0
LOADERS = 2  # client processes
CONNECTIONS = 16  # in all, over the loaders: several per worker, as the kernel spreads them
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("DROPOUT_RISK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _load(url: str, body: dict, headers: dict, connections: int, stop_at: float) -> tuple[list[float], int]:
    """One loader process: ``connections`` threads until ``stop_at``; the latencies (s) and the failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def client() -> None:
        mine: list[float] = []
        with httpx.Client(timeout=30) as http:
            while time.time() < stop_at:
                start = time.perf_counter()
                response = http.post(url, json=body, headers=headers)
                elapsed = time.perf_counter() - start
                if response.status_code != 200 or not 0 <= response.json()["risk"]["probability"] <= 1:
                    with lock:
                        failures[0] += 1
                    continue
                mine.append(elapsed)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0]


def _warm() -> None:
    """Nothing: running it makes each loader process import this module before the clock starts."""


def measure(pool, url: str, body: dict, headers: dict) -> dict[str, float]:
    started = time.time()
    args = [(url, body, headers, CONNECTIONS // LOADERS, started + SECONDS)] * LOADERS
    results = pool.starmap(_load, args)
    elapsed = time.time() - started
    latencies = np.array([s for part, _ in results for s in part]) * 1000
    failures = sum(f for _, f in results)
    if failures:
        raise RuntimeError(f"{failures} failed responses")
    return {
        "rps": len(latencies) / elapsed,
        "n": len(latencies),
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
    }


def wait_for_workers(url: str, process: subprocess.Popen, workers: int, timeout: float = 180) -> None:
    """Until /readyz answers and /metrics has been answered by ``workers`` distinct worker processes."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with httpx.Client(timeout=2) as fresh:  # a new connection each time: any worker may take it
                if fresh.get(f"{url}/readyz").status_code == 200:
                    seen |= set(re.findall(r'worker="(\d+)"', fresh.get(f"{url}/metrics").text))
        except httpx.HTTPError:
            pass
        if len(seen) >= workers:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{len(seen)} of {workers} workers ready")


def train_model(root: Path) -> tuple[str, list[dict]]:
    """A promoted model in a store under ``root``; its kind, and a 5-session history to score."""
    from score_throughput import promoted_champion  # this folder is on sys.path when a benchmark runs

    _, outcome = promoted_champion(root)
    history = [
        {"session_number": n, "session_date": f"2025-0{n}-06", "scores": {"ors": 14.0 + n, "srs": 33.0}}
        for n in range(1, 6)
    ]
    return outcome.report["model_kind"], history


def run_all(env: dict[str, str], history: list[dict]) -> dict[int, dict[str, float]]:
    key = subprocess.run(
        [str(BIN / "dropout-risk"), "keys", "create", "--clinic", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    key = key.splitlines()[-1]
    results = {}
    pool = multiprocessing.get_context("spawn").Pool(LOADERS)
    pool.starmap(_warm, [()] * LOADERS)
    for workers in WORKERS:
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "dropout-risk"), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_workers(url, server, workers)
            headers = {"Authorization": f"Bearer {key}"}
            results[workers] = measure(pool, f"{url}/v1/score", {"sessions": history}, headers)
        finally:
            os.killpg(server.pid, 15)  # SIGTERM to the supervisor and its workers
            server.wait(timeout=60)
    pool.close()
    pool.join()
    return results


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import psycopg

    database = f"bench_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
                "DROPOUT_RISK_DATABASE_URL": f"{base}/{database}",
                "DROPOUT_RISK_UI_SECRET": uuid.uuid4().hex * 2,
                # Throughput, not the per-key limits: one key on 16 connections would be refused by them.
                "DROPOUT_RISK_SERVING__RATE_LIMIT": "0",
                "DROPOUT_RISK_SERVING__MAX_INFLIGHT_PER_KEY": "0",
            }
            os.environ.update(env)
            kind, history = train_model(root)
            load_before = os.getloadavg()
            results = run_all(env, history)
            load_after = os.getloadavg()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(
        f"model={kind} cores={os.cpu_count()} loaders={LOADERS} connections={CONNECTIONS} seconds_each={SECONDS:.0f}"
        f" load_average_1min before={load_before[0]:.1f} after={load_after[0]:.1f}"
    )
    one = results[WORKERS[0]]["rps"]
    for workers, r in results.items():
        print(
            f"workers={workers} rps={r['rps']:.0f} (n={r['n']:.0f}) p50_ms={r['p50']:.1f} p99_ms={r['p99']:.1f}"
            f" scaling={r['rps'] / one:.2f}x"
        )


if __name__ == "__main__":
    main()
