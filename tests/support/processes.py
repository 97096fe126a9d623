"""Real processes for the reliability tests: the API (`dropout-risk serve`), an MLflow tracking server, keys.

Everything listens on 127.0.0.1 only, every wait is bounded, and every process is
started in its own process group so that stopping it (by its id) also stops its
children (MLflow's server runs uvicorn as a child).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import postgres
from tests.support.mlflow_store import StoreTemplate

BIN = Path(sys.executable).parent
ADMIN_KEY = "reliability-admin-key"
START_TIMEOUT = 120.0  # seconds: a cold start imports MLflow and scikit-learn on a busy 2-core machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """This environment without the caller's dropout-risk and MLflow settings, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DROPOUT_RISK_") and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill9(self) -> None:
        """SIGKILL the process itself (a crash: no shutdown handlers run)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reap_group()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited within ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reap_group()

    def _reap_group(self) -> None:
        # Children left in the group (a killed parent's workers): end them too, by the group's id.
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _wait_until(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeError(f"{self.name} exited (code {code}) before {what}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if ready():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not {what} within {timeout:.0f} s:\n{self.log_tail()}")


class ApiServer(Process):
    """``dropout-risk serve`` on a free loopback port, ready when /readyz answers 200."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        tracking_uri: str,
        *,
        poll_interval: float = 3600.0,
        env: dict[str, str] | None = None,
        name: str = "api",
        workers: int = 1,
    ):
        super().__init__(name, workdir)
        self.database_url = database_url
        self.workers = workers
        # Load and crash tests drive one key far faster than a clinic would: no rate limit or in-flight cap
        # unless ``env`` sets them.
        defaults = {"DROPOUT_RISK_SERVING__RATE_LIMIT": "0", "DROPOUT_RISK_SERVING__MAX_INFLIGHT_PER_KEY": "0"}
        self.env = clean_env(
            DROPOUT_RISK_DATABASE_URL=database_url,
            MLFLOW_TRACKING_URI=tracking_uri,
            DROPOUT_RISK_ADMIN_KEY=ADMIN_KEY,
            DROPOUT_RISK_SERVING__POLL_INTERVAL_SECONDS=str(poll_interval),
            **{**defaults, **(env or {})},
        )
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT, *, ready: bool = True) -> ApiServer:
        """Start and wait until /readyz answers 200 (``ready=False``: until /healthz does, the process is up)."""
        check, what = (self._ready, "ready") if ready else (self._up, "up")
        for _attempt in range(3):  # another process may take the free port between the check and the bind
            self.port = free_port()
            argv = [str(BIN / "dropout-risk"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            self._spawn(argv + (["--workers", str(self.workers)] if self.workers > 1 else []), self.env)
            try:
                self._wait_until(check, timeout, what)
                return self
            except RuntimeError:
                if "address already in use" not in self.log_tail().lower():
                    raise
        raise RuntimeError(f"{self.name}: no free port after 3 attempts")

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200

    def _up(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200

    def client(self, key: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


class MlflowServer(Process):
    """``mlflow server`` (one worker, no job runner) on a fixed port, so it can come back where it was.

    Given a ``template``, its store starts as a copy of it and the server migrates nothing at start.
    """

    def __init__(self, workdir: Path, name: str = "mlflow", template: StoreTemplate | None = None):
        super().__init__(name, workdir)
        self.port = free_port()
        database = workdir / "mlflow.db"
        self.backend = template.copy_to(database) if template is not None else f"sqlite:///{database}"
        self.artifacts = workdir / "mlartifacts"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> MlflowServer:
        argv = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.backend,
            "--artifacts-destination",
            str(self.artifacts),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        self._spawn(argv, clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
        self._wait_until(lambda: httpx.get(f"{self.url}/health", timeout=5).status_code == 200, timeout, "healthy")
        return self

    def freeze(self) -> None:
        """SIGSTOP the server's process group: a hung registry (connections accepted, never answered)."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()  # a stopped process would not act on SIGTERM
        super().stop(timeout)

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def create_key(workdir: Path, database_url: str, clinic: str) -> str:
    """A clinic's API key from the real command (`dropout-risk keys create`), which prints it last."""
    result = subprocess.run(
        [str(BIN / "dropout-risk"), "keys", "create", "--clinic", clinic],
        env=clean_env(DROPOUT_RISK_DATABASE_URL=database_url),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    key = result.stdout.strip().splitlines()[-1].strip()
    assert key.startswith("drk_"), "keys create did not print a key on its last line"
    return key


def start_with_key(server: ApiServer, clinic: str, *, ready: bool = True) -> str:
    """Start ``server`` while `dropout-risk keys create` makes the clinic's key beside it; the key.

    The two processes migrate the same fresh database at the same time, as an operator's would.
    """
    with ThreadPoolExecutor(1) as pool:
        key = pool.submit(create_key, server.workdir, server.database_url, clinic)
        server.start(ready=ready)
        return key.result()


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A database of its own for one reliability test (dropped afterwards)."""
    with postgres.fresh_postgres_database("dropout_risk_reliability") as url:
        yield url


@contextlib.contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file in ``directory`` or a PostgreSQL database of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/dropout_risk.db"
    else:
        with fresh_postgres_database() as url:
            yield url


def session_payload(client_id: str, number: int, seed: int = 0, variant: int = 0) -> dict:
    """Session ``number`` of a client: deterministic scores, dates a week apart; ``variant`` changes the scores."""
    rng = random.Random(f"{seed}:{client_id}:{number}:{variant}")
    body = {
        "session_number": number,
        "session_date": (dt.date(2025, 1, 6) + dt.timedelta(days=7 * (number - 1))).isoformat(),
        "scores": {"ors": round(rng.uniform(4, 38) * 2) / 2, "srs": round(rng.uniform(20, 40) * 2) / 2},
    }
    if rng.random() < 0.3:
        body["missed_since_last"] = rng.randint(0, 2)
    return body


class Tally:
    """Thread-safe counts of responses by status (and transport errors by type)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def status(self, code: int) -> None:
        with self._lock:
            self.statuses[code] += 1

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors[type(exc).__name__] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def summary(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        errors = ", ".join(f"{name}: {n}" for name, n in sorted(self.errors.items())) or "none"
        return f"requests {self.requests} ({codes}); transport errors {errors}"


def report(item: str, **figures) -> None:
    """One greppable line of figures per run (`pytest -s` shows them)."""
    print(f"\nRELIABILITY {item}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def stored_sessions(database_url: str) -> dict[tuple[str, int], list[dict]]:
    """Every stored session, read from the database itself: (client id, number) -> its rows (one, if all is well)."""
    from sqlalchemy import select

    from dropout_risk.serving.db import make_engine
    from dropout_risk.serving.tables import Client, SessionRecord

    engine = make_engine(database_url, writer=False)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    Client.external_id,
                    SessionRecord.session_number,
                    SessionRecord.session_date,
                    SessionRecord.scores,
                    SessionRecord.missed_since_last,
                    SessionRecord.risk,
                ).join(Client, Client.id == SessionRecord.client_pk)
            ).all()
    finally:
        engine.dispose()
    stored: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        stored.setdefault((row.external_id, row.session_number), []).append(
            {
                "session_number": row.session_number,
                "session_date": row.session_date.isoformat(),
                "scores": dict(row.scores),
                "missed_since_last": row.missed_since_last,
                "risk": row.risk,
            }
        )
    return stored


def same_payload(stored: dict, payload: dict) -> bool:
    return (
        stored["session_date"] == payload["session_date"]
        and stored["scores"] == {k: float(v) for k, v in payload["scores"].items()}
        and stored["missed_since_last"] == payload.get("missed_since_last")
    )


class ClinicWriter:
    """A clinic's system recording its clients' sessions in order (n+1 once n is acknowledged), resumable.

    Round-robin over its clients; stops at the first transport error (the server is gone) and
    remembers the request that was cut off, whose fate is unknown until the server is back.
    """

    def __init__(self, name: str, clients: int, max_sessions: int, seed: int = 3):
        self.clients = [f"{name}-c{i:02d}" for i in range(clients)]
        self.next = dict.fromkeys(self.clients, 1)
        self.max_sessions = max_sessions
        self.seed = seed
        self.acknowledged: dict[tuple[str, int], tuple[dict, dict]] = {}  # -> (payload, risk)
        self.in_flight: tuple[str, int] | None = None
        self.unexpected: list[str] = []

    def payload(self, client: str, number: int) -> dict:
        return session_payload(client, number, seed=self.seed)

    def send(self, http: httpx.Client, client: str, tally: Tally, expected: tuple[int, ...] = (201,)) -> bool:
        number = self.next[client]
        payload = self.payload(client, number)
        self.in_flight = (client, number)
        try:
            response = http.post(f"/v1/clients/{client}/sessions", json=payload)
        except httpx.HTTPError as exc:
            tally.error(exc)
            return False
        tally.status(response.status_code)
        self.in_flight = None
        if response.status_code not in expected:
            self.unexpected.append(f"{client}/{number}: {response.status_code}, expected {expected}")
            return False
        self.acknowledged[(client, number)] = (payload, response.json()["risk"])
        self.next[client] += 1
        return True

    def run(self, url: str, key: str, tally: Tally, stop: threading.Event) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while not stop.is_set():
                pending = [c for c in self.clients if self.next[c] <= self.max_sessions]
                if not pending:
                    return
                for client in pending:
                    if stop.is_set() or not self.send(http, client, tally):
                        return

    def resume(self, http: httpx.Client, stored: dict, tally: Tally) -> str | None:
        """After a restart, send the cut-off request again: 200 if it had committed, 201 if not."""
        if self.in_flight is None:
            return None
        client, number = self.in_flight
        committed = (client, number) in stored
        self.send(http, client, tally, expected=(200,) if committed else (201,))
        return "committed" if committed else "not committed"


@dataclass
class Crash:
    """What one kill -9 and restart found."""

    killed_after: float
    acknowledged: int  # in total so far
    acknowledged_this_run: int
    in_flight: int
    in_flight_committed: int
    lost: list
    altered: list
    phantom: list  # stored, yet never sent
    api_mismatches: list
    before: Tally
    after: Tally


def crash_and_restart(
    server: ApiServer, key: str, writers: list[ClinicWriter], kill_after: float, min_acknowledged: int = 1
) -> Crash:
    """Writers record until ``kill_after`` s have passed (and ``min_acknowledged`` were acknowledged), then
    SIGKILL the server, start it again on the same database, check every acknowledged session, resume."""
    before, after, stop = Tally(), Tally(), threading.Event()
    already = sum(len(w.acknowledged) for w in writers)
    threads = [threading.Thread(target=w.run, args=(server.url, key, before, stop), daemon=True) for w in writers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    deadline = started + 120
    while time.monotonic() < deadline and (
        time.monotonic() - started < kill_after
        or sum(len(w.acknowledged) for w in writers) - already < min_acknowledged
    ):
        time.sleep(0.02)
    server.kill9()
    killed_after = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    if any(t.is_alive() for t in threads):
        raise RuntimeError("a writer did not stop after the kill")
    acknowledged = {k: v for w in writers for k, v in w.acknowledged.items()}
    in_flight = {w.in_flight for w in writers if w.in_flight is not None}

    server.start()  # the same database, as the crash left it
    stored = stored_sessions(server.database_url)
    lost = [k for k in acknowledged if k not in stored]
    altered = [
        k
        for k, (payload, risk) in acknowledged.items()
        if k in stored
        and (len(stored[k]) != 1 or not same_payload(stored[k][0], payload) or stored[k][0]["risk"] != risk)
    ]
    phantom = [k for k in stored if k not in acknowledged and k not in in_flight]
    mismatches = []
    with server.client(key) as http:
        for client in sorted({c for c, _ in acknowledged} | {c for c, _ in in_flight}):
            response = http.get(f"/v1/clients/{client}/risk")
            after.status(response.status_code)
            # 404: the client's only session was the one cut off, and it had not committed.
            history = response.json()["history"] if response.status_code == 200 else []
            if [h["session_number"] for h in history] != sorted(n for c, n in stored if c == client):
                mismatches.append(client)
        for writer in writers:
            writer.resume(http, stored, after)
    return Crash(
        killed_after=killed_after,
        acknowledged=len(acknowledged),
        acknowledged_this_run=len(acknowledged) - already,
        in_flight=len(in_flight),
        in_flight_committed=len(in_flight & stored.keys()),
        lost=lost,
        altered=altered,
        phantom=phantom,
        api_mismatches=mismatches,
        before=before,
        after=after,
    )
