"""Clinics' systems recording sessions with retries and races, spread over one or several server processes.

Shared by the single-process concurrency test (tests/serving/test_concurrency.py) and the
multi-process ones (tests/serving/test_scale_out.py). Each writer owns some clients and
records their sessions in order (n+1 only once n is acknowledged). Requests go to the
given URLs in turn, as a round-robin balancer sends them: a retry after a lost response
(``retry_share`` of acknowledged sessions) goes to the next process, and so does a
request retried after a transport error (a killed process); the two posts of a race go
to two processes at the same instant.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx

from tests.support.processes import Tally, same_payload, session_payload

ATTEMPTS = 4  # a transport error is retried with the same payload, on the next process


@dataclass(frozen=True)
class WritePlan:
    clients: int = 200
    sessions: int = 10
    writers: int = 8
    retry_share: float = 0.10
    identical_races: int = 24  # the same payload posted twice at once: one 201, one 200
    conflicting_races: int = 12  # two different payloads for one number at once: one 201, one 409
    prefix: str = ""  # of the client ids: several runs on one database keep apart

    @property
    def total(self) -> int:
        return self.clients * self.sessions

    def client_ids(self) -> list[str]:
        return [f"{self.prefix}c{i:03d}" for i in range(self.clients)]

    def mine(self, stored: dict) -> dict:
        """The stored sessions of this plan's clients."""
        ids = set(self.client_ids())
        return {k: v for k, v in stored.items() if k[0] in ids}

    def races(self) -> dict[tuple[str, int], str]:
        """Which sessions are raced, and how: a third of them are first sessions (two writers creating the client)."""
        rng = random.Random(7)
        chosen = rng.sample(self.client_ids(), self.identical_races + self.conflicting_races)
        plan = {}
        for i, client in enumerate(chosen):
            number = 1 if i % 3 == 0 else rng.randint(2, self.sessions)
            plan[(client, number)] = "identical" if i < self.identical_races else "conflicting"
        return plan


@dataclass
class Run:
    tally: Tally = field(default_factory=Tally)
    acknowledged: dict = field(default_factory=dict)  # (client, number) -> (payload, risk)
    problems: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    retries: int = 0
    retries_elsewhere: int = 0  # duplicate retries answered by another process than the first answer
    races: int = 0
    conflicts_seen: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # responses received, by the URL that sent them

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def acknowledge(self, client: str, payload: dict, body: dict) -> None:
        with self.lock:
            key = (client, payload["session_number"])
            if key in self.acknowledged and self.acknowledged[key][1] != body["risk"]:
                self.problems.append(f"{key}: acknowledged twice with different risks")
            self.acknowledged[key] = (payload, body["risk"])


class Connections:
    """Two keep-alive connections to each URL (a race needs two at once), taken in turn."""

    def __init__(self, stack: ExitStack, urls: list[str], key: str, start: int = 0):
        headers = {"Authorization": f"Bearer {key}"}
        self.urls = urls
        self.pairs = [
            tuple(stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60)) for _ in range(2))
            for url in urls
        ]
        self._turn = itertools.count(start)

    def next(self) -> int:
        return next(self._turn) % len(self.pairs)

    def post(self, run: Run, client: str, payload: dict, where: int, second: bool = False) -> httpx.Response | None:
        try:
            response = self.pairs[where][int(second)].post(f"/v1/clients/{client}/sessions", json=payload)
        except httpx.HTTPError as exc:
            run.tally.error(exc)
            return None
        run.tally.status(response.status_code)
        with run.lock:
            run.answers[self.urls[where]] += 1
        return response

    def post_retrying(self, run: Run, client: str, payload: dict) -> tuple[httpx.Response | None, int, int]:
        """Post until answered (each attempt on the next process); the response, the attempts, who answered."""
        for attempt in range(1, ATTEMPTS + 1):
            where = self.next()
            response = self.post(run, client, payload, where)
            if response is not None:
                return response, attempt, where
        return None, ATTEMPTS, -1


def writer(urls: list[str], key: str, index: int, run: Run, plan: WritePlan, races: dict) -> None:
    """Record the sessions of this writer's clients (every ``plan.writers``-th from ``index``)."""
    rng = random.Random(1000 + index)
    mine = plan.client_ids()[index :: plan.writers]
    abandoned: set[str] = set()
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        connections = Connections(stack, urls, key, start=index)
        for number in range(1, plan.sessions + 1):
            for client in mine:
                if client in abandoned:
                    continue
                payload = session_payload(client, number)
                kind = races.get((client, number))
                if kind is not None:
                    if not _race(pool, connections, run, client, payload, kind):
                        abandoned.add(client)
                    continue
                if not _record(connections, run, client, payload, rng.random() < plan.retry_share):
                    abandoned.add(client)


def _record(connections: Connections, run: Run, client: str, payload: dict, retry: bool) -> bool:
    """One session, and (``retry``) its duplicate as after a lost response: 200 with the same body."""
    where = f"{client}/{payload['session_number']}"
    response, attempts, answered_by = connections.post_retrying(run, client, payload)
    if response is None:
        run.problem(f"{where}: no process answered in {ATTEMPTS} attempts")
        return False
    if response.status_code != 201 and not (attempts > 1 and response.status_code == 200):
        run.problem(f"{where}: {response.status_code} {response.text[:200]}")
        return False
    run.acknowledge(client, payload, response.json())
    if not retry:
        return True
    again, _, again_by = connections.post_retrying(run, client, payload)
    with run.lock:
        run.retries += 1
        run.retries_elsewhere += again_by != answered_by
    if again is None or again.status_code != 200 or again.json() != response.json():
        run.problem(f"retry of {where}: {None if again is None else again.status_code}, not 200 with the same body")
    return True


def _race(pool: ThreadPoolExecutor, connections: Connections, run: Run, client: str, payload: dict, kind: str) -> bool:
    """Post ``payload`` and its twin (the same, or a different one) at the same instant, to two processes in turn."""
    other = payload if kind == "identical" else session_payload(client, payload["session_number"], variant=1)
    barrier = threading.Barrier(2, timeout=30)
    first = connections.next()
    targets = [(first, False), ((first + 1) % len(connections.pairs), True)]  # one URL: its two connections

    def fire(target: tuple[int, bool], body: dict) -> httpx.Response | None:
        barrier.wait()
        return connections.post(run, client, body, *target)

    futures = [pool.submit(fire, target, body) for target, body in zip(targets, (payload, other), strict=True)]
    outcomes = [(future.result(), body) for future, body in zip(futures, (payload, other), strict=True)]
    with run.lock:
        run.races += 1
    if any(response is None for response, _ in outcomes):
        return False
    codes = sorted(response.status_code for response, _ in outcomes)
    expected = [200, 201] if kind == "identical" else [201, 409]
    where = f"{kind} race on {client}/{payload['session_number']}"
    if codes != expected:
        run.problem(f"{where}: {codes}, expected {expected}")
    for response, body in outcomes:
        if response.status_code in (200, 201):
            run.acknowledge(client, body, response.json())
    if kind == "identical" and codes == expected and outcomes[0][0].json() != outcomes[1][0].json():
        run.problem(f"{where}: the two bodies differ")
    if kind == "conflicting":
        with run.lock:
            run.conflicts_seen += codes.count(409)
    return True


def write_all(urls: list[str], key: str, plan: WritePlan, races: dict, run: Run, timeout: float = 600) -> None:
    """Every writer at once, until each has recorded its clients' sessions (or given up on some)."""
    threads = [
        threading.Thread(target=writer, args=(urls, key, w, run, plan, races), daemon=True) for w in range(plan.writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if any(t.is_alive() for t in threads):
        raise RuntimeError(f"writers did not finish within {timeout:.0f} s")


@dataclass
class Outcome:
    """What the database holds against what was acknowledged."""

    lost: list
    duplicated: list
    altered: list
    unacknowledged: list


def compare(run: Run, stored: dict) -> Outcome:
    return Outcome(
        lost=[k for k in run.acknowledged if k not in stored],
        duplicated=[k for k, rows in stored.items() if len(rows) != 1],
        altered=[
            k
            for k, (payload, risk) in run.acknowledged.items()
            if k in stored and not (same_payload(stored[k][0], payload) and stored[k][0]["risk"] == risk)
        ],
        unacknowledged=[k for k in stored if k not in run.acknowledged],
    )


def read_back(urls: list[str], key: str, run: Run, plan: WritePlan) -> tuple[list[str], Tally]:
    """Every client's history through the API, each from the next process: the acknowledged sessions once each."""
    reads = Tally()
    mismatches = []
    headers = {"Authorization": f"Bearer {key}"}
    with ExitStack() as stack:
        https = [stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60)) for url in urls]
        for i, client in enumerate(plan.client_ids()):
            response = https[i % len(https)].get(f"/v1/clients/{client}/risk")
            reads.status(response.status_code)
            history = response.json().get("history", []) if response.status_code == 200 else []
            got = [(h["session_number"], h["session_date"]) for h in history]
            expected = [
                (n, run.acknowledged[(client, n)][0]["session_date"])
                for n in range(1, plan.sessions + 1)
                if (client, n) in run.acknowledged
            ]
            if got != expected or len(expected) != plan.sessions:
                mismatches.append(client)
        caseload = https[-1].get("/v1/clients", params={"page_size": plan.clients})
        reads.status(caseload.status_code)
        if caseload.status_code != 200 or caseload.json()["total"] != plan.clients:
            mismatches.append("caseload")
        elif any(item["session_number"] != plan.sessions for item in caseload.json()["items"]):
            mismatches.append("caseload: a client's current session is not its last")
    return mismatches, reads
