"""Several ``dropout-risk serve`` processes on one database, as replicas behind a load balancer.

Each process has its own port (as separate machines would); the tests spread requests over
them in turn (tests/support/writes.py, or ``Cluster.urls``), acting as a round-robin balancer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.processes import ApiServer, create_key

UI_SECRET = "scale-out-test-ui-secret-shared-by-every-process"


class Cluster:
    def __init__(
        self, workdir: Path, database_url: str, tracking_uri: str, poll_intervals: list[float], workers: list[int]
    ):
        """One `serve` per poll interval (different ones put their polls out of step, as on separate machines),
        each with its number of ``--workers``."""
        env = {"DROPOUT_RISK_UI_SECRET": UI_SECRET}  # every replica signs dashboard cookies alike
        self.servers = [
            ApiServer(workdir, database_url, tracking_uri, poll_interval=interval, env=env, name=f"api{i}", workers=n)
            for i, (interval, n) in enumerate(zip(poll_intervals, workers, strict=True))
        ]
        self.workdir, self.database_url = workdir, database_url

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, clinic: str) -> str:
        """Start every process at once (they migrate the fresh database together) beside `keys create`; the key."""
        with ThreadPoolExecutor(len(self.servers) + 1) as pool:
            key = pool.submit(create_key, self.workdir, self.database_url, clinic)
            for started in [pool.submit(server.start) for server in self.servers]:
                started.result()
            return key.result()

    def stop(self) -> None:
        with ThreadPoolExecutor(len(self.servers)) as pool:
            for stopped in [pool.submit(server.stop) for server in self.servers]:
                stopped.result()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
