"""Health data stay out of logs and error bodies: no client id, no score, whatever a request gets wrong.

A realistic workload (valid sessions, retries, conflicts, invalid payloads of
every kind, 401/404/405/409/422 paths, stateless scores with bad histories,
PUTs with bad covariates, and an internal error whose exception carries the
data) goes through the app with every logger at DEBUG (SQLAlchemy's engine at
INFO: statements and their parameters), then through a real
``dropout-risk serve`` process. Canary client ids and scores must appear in no
log record, no captured output, no error body and no error header.

The canary scores have six significant digits so that no timing in a log line
("23.7ms", "cached since 23.7s ago") can match one by chance; error bodies,
which carry no timings, are also searched for the one-decimal forms.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dropout_risk.serving import service
from dropout_risk.serving.db import make_engine, session_factory, transaction
from dropout_risk.serving.keys import create_key, revoke_key
from dropout_risk.serving.migrate import upgrade

CANARY = "PRIVACY-CANARY-77"  # every client id below starts with it
ID, OTHER = "PRIVACY-CANARY-7731", "PRIVACY-CANARY-7732"
A, B = 23.7137, 31.3193  # ORS/SRS-valid; above the PHQ-9 (0-27) and GAD-7 (0-21) maxima
IN_LOGS = re.compile(r"privacy-canary-77|23\.7137|31\.3193", re.IGNORECASE)
IN_BODIES = re.compile(r"privacy-canary-77|23\.7|31\.3", re.IGNORECASE)
CLIENT_SIDE = ("httpx", "httpcore")  # the test's own HTTP client logs the URLs it requests: not the server

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": A, "srs": B}}
S2 = {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": B, "srs": A}, "missed_since_last": 1}


def _phq9(client: str, score: object, date: str = "2025-04-07") -> dict:
    """A PHQ-9 total (LOINC 44261-6, a built-in code) as a FHIR Observation."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": f"Patient/{client}"},
        "effectiveDateTime": date,
        "valueQuantity": {"value": score},
    }


def _bundle(kind: str, *resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def _session(number: int, **change) -> dict:
    return {"session_number": number, "session_date": f"2025-03-{10 + number:02d}", "scores": {"ors": A}, **change}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    json: object = None
    content: bytes | None = None
    content_type: str = "application/json"
    auth: str = "key"  # key, other (another clinic), revoked, wrong, none


def _requests() -> list[Request]:
    sessions = f"/v1/clients/{ID}/sessions"
    return [
        # valid, retried, conflicting
        Request("POST", sessions, 201, S1),
        Request("POST", sessions, 201, S2),
        Request("POST", sessions, 200, S2),
        Request("POST", sessions, 409, {**S2, "scores": {"ors": A, "srs": B}}),
        # invalid sessions: numbering, dates, ranges, types, shapes
        Request("POST", sessions, 422, _session(4)),
        Request("POST", sessions, 422, _session(3, session_date="2025-03-01")),
        Request("POST", sessions, 422, _session(3, scores={"phq9": B, "gad7": A})),
        Request("POST", sessions, 422, _session(3, scores={"ors": str(A)})),
        Request("POST", sessions, 422, _session(3, scores={"ors": True})),
        Request("POST", sessions, 422, _session(3, scores={"ors": [A, B]})),
        Request("POST", sessions, 422, _session(3, scores={"bdi2": A})),
        Request("POST", sessions, 422, _session(3, session_number=str(B))),
        Request("POST", sessions, 422, _session(3, session_date=str(A))),
        Request("POST", sessions, 422, _session(3, session_date=f"{ID}")),
        Request("POST", sessions, 422, _session(3, missed_since_last=-int(A))),
        Request("POST", sessions, 422, _session(3, client_id=ID, note=f"{ID} scored {A}")),
        Request("POST", sessions, 422, [S1, ID, A]),
        Request("POST", sessions, 422, content=b'{"session_number": 3, "scores": {"ors": NaN, "srs": 31.3193}}'),
        Request("POST", sessions, 422, content=f'{{"session_number": 3, "client_id": "{ID}", "ors": {A}'.encode()),
        Request("POST", sessions, 400, content=f'{{"client_id": "{ID}", "ors": {A}, "x": "\xff"}}'.encode("latin-1")),
        Request("POST", sessions, 422, content=json.dumps(_session(3)).encode(), content_type="text/plain"),
        # reads, absent clients, another clinic, caseload with bad queries
        Request("GET", f"/v1/clients/{ID}", 200),
        Request("GET", f"/v1/clients/{ID}/risk", 200),
        Request("GET", f"/v1/clients/{OTHER}", 404),
        Request("GET", f"/v1/clients/{OTHER}/risk", 404),
        Request("GET", f"/v1/clients/{ID}", 404, auth="other"),
        Request("GET", f"/v1/clients/{ID}/risk", 404, auth="other"),
        Request("GET", f"/v1/clients?order=risk&client_id={ID}", 200),
        Request("GET", f"/v1/clients?order={ID}", 422),
        Request("GET", f"/v1/clients?page_size={A}", 422),
        Request("GET", f"/v1/clients?page={ID}", 422),
        # bad client ids in the path
        Request("GET", f"/v1/clients/{ID}%20{A}", 422),
        Request("GET", f"/v1/clients/{ID}{'9' * 300}", 422),
        Request("POST", f"/v1/clients/{ID}%C3%A9/sessions", 422, S1),
        Request("GET", f"/v1/clients/{ID}/sessions/{A}", 404),
        Request("DELETE", f"/v1/clients/{ID}", 405),
        # covariates and status
        Request("PUT", f"/v1/clients/{ID}", 200, {"age": 41, "gender": "F", "covariates": {"referral": "gp"}}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"age": str(B)}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"age": 100 + A}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"gender": f"{ID} {A} " * 3}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"status": ID}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"therapist_id": ID * 20}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"covariates": {"note": {"client": ID, "score": A}}}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"client_id": ID, "scores": {"ors": A}}),
        Request("PUT", f"/v1/clients/{ID}", 422, content=f'{{"age": {A}, "gender": "{ID}"'.encode()),
        # closing the episode (issue 13), then the monitor over it
        Request("PUT", f"/v1/clients/{ID}", 422, {"status": "ongoing", "ended_on": "2025-04-01"}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"status": "dropout", "ended_on": ID}),
        Request("PUT", f"/v1/clients/{ID}", 422, {"status": "dropout", "ended_on": "2025-03-01"}),
        Request("PUT", f"/v1/clients/{ID}", 200, {"status": "dropout", "ended_on": "2025-04-01"}),
        Request("GET", "/v1/monitoring", 200),
        Request("GET", f"/v1/monitoring?since={ID}", 422),
        Request("GET", f"/v1/monitoring?clinic={ID}", 403),
        Request("GET", "/v1/monitoring", 401, auth="revoked"),
        # stateless scores with bad histories
        Request("POST", "/v1/score", 200, {"sessions": [S1, S2], "covariates": {"age": A, "gender": ID}}),
        Request("POST", "/v1/score", 422, {"sessions": [S1, _session(3)]}),
        Request("POST", "/v1/score", 422, {"sessions": [S2, S1]}),
        Request("POST", "/v1/score", 422, {"sessions": [S1, {**S2, "session_date": "2025-03-01"}]}),
        Request("POST", "/v1/score", 422, {"sessions": [{**S1, "scores": {"phq9": B, "gad7": A}}]}),
        Request("POST", "/v1/score", 422, {"sessions": []}),
        Request("POST", "/v1/score", 422, {"sessions": [_session(n + 1) for n in range(501)]}),
        Request("POST", "/v1/score", 422, {"sessions": [S1], "client_id": ID}),
        Request("POST", "/v1/score", 422, {"sessions": [S1], "covariates": {"x": [ID, A]}}),
        Request("POST", "/v1/score", 422, {"sessions": ID}),
        # keys
        Request("POST", sessions, 401, S1, auth="none"),
        Request("GET", f"/v1/clients/{ID}", 401, auth="wrong"),
        Request("GET", f"/v1/clients/{ID}/risk", 401, auth="revoked"),
        Request("POST", "/v1/score", 401, {"sessions": [S1]}, auth="revoked"),
        Request("PUT", f"/v1/clients/{ID}", 401, {"age": A}, auth="wrong"),
        Request("GET", "/v1/clients", 401, auth="none"),
        Request("GET", "/v1/model", 200),
        Request("GET", "/v1/model", 401, auth="wrong"),
        Request("POST", "/v1/admin/reload", 401, auth="key"),
        # FHIR in and out: bad entries are named, never quoted; another clinic finds nothing
        Request(
            "POST", "/fhir/r4", 200, _bundle("batch", _phq9(ID, A), _phq9(ID, B, "2025-04-14"), _phq9(OTHER, str(A)))
        ),
        Request(
            "POST", "/fhir/r4", 200, _bundle("collection", _phq9(ID, A), {**_phq9(ID, A), "subject": {"reference": ID}})
        ),
        Request("POST", "/fhir/r4", 422, _bundle("transaction", _phq9(OTHER, A), _phq9(OTHER, B, "2025-05-05"))),
        Request("POST", "/fhir/r4", 409, _bundle("transaction", _phq9(ID, B / 2, "2025-03-03"))),
        Request("POST", "/fhir/r4", 400, {"resourceType": "Bundle", "type": ID, "entry": [_phq9(ID, A)]}),
        Request("POST", "/fhir/r4", 400, {"resourceType": "Bundle", "type": "batch", "timestamp": f"{ID} {A}"}),
        Request("POST", "/fhir/r4", 401, _bundle("batch", _phq9(ID, A)), auth="wrong"),
        Request("GET", f"/fhir/r4/RiskAssessment?subject={ID}", 200),
        Request("GET", f"/fhir/r4/RiskAssessment?subject=Patient/{ID}", 200, auth="other"),
        Request("GET", f"/fhir/r4/RiskAssessment?subject=Group/{ID}", 400),
        Request("GET", f"/fhir/r4/RiskAssessment?subject={ID}&_format={A}", 400),
        Request("GET", f"/fhir/r4/RiskAssessment?subject={ID}", 401, auth="revoked"),
        # webhooks: a refused target is named by its rule, not echoed
        Request("POST", "/v1/webhooks", 422, {"url": f"http://{ID}.example/{A}", "events": ["flag.raised"]}),
        Request("POST", "/v1/webhooks", 422, {"url": f"https://{ID}.example/", "events": [ID]}),
        Request("GET", "/v1/webhooks/999999/deliveries", 404),
        # CDS Hooks: a caller without a registered issuer's JWT (an API key is not one) is 401, body unread
        Request("POST", "/cds-services/dropout-risk", 401, {"hook": "patient-view", "context": {"patientId": ID}}),
        Request(
            "POST", "/cds-services/dropout-risk", 401, {"hookInstance": A, "context": {"patientId": ID}}, auth="none"
        ),
    ]


Send = Callable[[Request, dict], tuple[int, str, dict]]


def _run(send: Send, keys: dict[str, str]) -> list[str]:
    """Send the workload; returns what the error responses carried (bodies and headers)."""
    headers = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    headers["none"] = {}
    errors, wrong = [], []
    for request in _requests():
        status, body, response_headers = send(request, headers[request.auth])
        if status != request.status:
            wrong.append(f"{request.method} {request.path[:60]}: {status}, expected {request.status}")
        # An import's answer (entry outcomes) is searched like an error: it names entries, never their data.
        if status >= 400 or (request.method, request.path) == ("POST", "/fhir/r4"):
            errors.append(f"{status} {body} {json.dumps(response_headers)}")
    assert not wrong, wrong
    return errors


def _leaks(texts: list[str], pattern: re.Pattern) -> list[str]:
    return [text[:300] for text in texts if pattern.search(text)]


def _without_timings(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?(ms|s)\b", "<time>", text)


# --- in process: every logger, both databases ---------------------------------------------------------------


@pytest.fixture
def every_logger(caplog):
    caplog.set_level(logging.DEBUG)
    for name in (
        "dropout_risk",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "fastapi",
        "starlette",
        "mlflow",
        "alembic",
        "sqlalchemy.pool",
        "sqlalchemy.orm",
        "asyncio",
        "anyio",
        "multipart",
    ):
        caplog.set_level(logging.DEBUG, logger=name)
    # SQLAlchemy's echo=True: every statement with its parameters. (DEBUG would add result rows, which is
    # a data dump by design: never turn it on against health data.)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    return caplog


def _records(caplog) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in caplog.records:
        if record.name.startswith(CLIENT_SIDE):
            continue
        text = f"{record.name} {record.getMessage()}"
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        if record.stack_info:
            text += record.stack_info
        texts.append(text)
    return texts


def test_no_client_id_or_score_in_logs_or_error_bodies(api, every_logger, capfd, monkeypatch):
    keys = {}
    for name in ("key", "other", "revoked"):
        keys[name] = api.new_clinic()["Authorization"].removeprefix("Bearer ")
    with transaction(api.app.state.sessions) as db:
        assert revoke_key(db, keys["revoked"][:12]) == 1
    keys["wrong"] = "drk_" + ID

    def send(request: Request, headers: dict) -> tuple[int, str, dict]:
        kwargs = {"headers": {**headers, "Content-Type": request.content_type}}
        if request.content is not None:
            kwargs["content"] = request.content
        elif request.json is not None:
            kwargs["content"] = json.dumps(request.json).encode()
        response = api.client.request(request.method, request.path, **kwargs)
        return response.status_code, response.text, dict(response.headers)

    errors = _run(send, keys)

    # An internal error whose exception message carries the client's data (as a driver error would).
    def fail(*_args, **_kwargs):
        raise RuntimeError(f"could not score client {ID}: ors={A} srs={B}")

    monkeypatch.setattr(service, "score_history", fail)
    try:
        response = api.client.post(
            f"/v1/clients/{ID}-9/sessions", json=S1, headers={"Authorization": f"Bearer {keys['key']}"}
        )
    except RuntimeError:
        pytest.fail("the exception reached the server, which would log it (message, traceback) as it is")
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    errors.append(response.text)

    logs = _records(every_logger)
    out, err = capfd.readouterr()
    assert any("internal error on POST /v1/clients/{client_id}/sessions: RuntimeError" in t for t in logs)
    assert sum(t.startswith("dropout_risk.access") for t in logs) >= len(_requests())
    assert any(t.startswith("sqlalchemy.engine") for t in logs), "SQL logging was not captured"
    assert not _leaks(errors, IN_BODIES), "an error response carries a client id or a score"
    assert not _leaks([_without_timings(t) for t in logs], IN_LOGS), "a log record carries a client id or a score"
    assert not _leaks([_without_timings(out), _without_timings(err)], IN_LOGS)


# --- a real server process ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.reliability
def test_a_real_server_never_prints_a_client_id_or_score(champion, tmp_path):
    database = tmp_path / "dropout_risk.db"
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine)
    keys = {}
    with transaction(session_factory(engine)) as db:
        for name in ("key", "other", "revoked"):
            keys[name], _ = create_key(db, f"privacy-{name}")
    with transaction(session_factory(engine)) as db:
        revoke_key(db, keys["revoked"][:12])
    engine.dispose()
    keys["wrong"] = "drk_" + ID

    port = _free_port()
    env = {
        **os.environ,
        "DROPOUT_RISK_DATABASE_URL": url,
        "MLFLOW_TRACKING_URI": champion.store.uri,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DROPOUT_RISK_CONFIG", None)
    command = [str(Path(sys.executable).with_name("dropout-risk")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=err)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                assert server.poll() is None, f"the server exited: {stderr.read_text()[-2000:]}"
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.25)

            def send(request: Request, headers: dict) -> tuple[int, str, dict]:
                body = (
                    request.content
                    if request.content is not None
                    else (json.dumps(request.json).encode() if request.json is not None else None)
                )
                response = client.request(
                    request.method,
                    request.path,
                    content=body,
                    headers={**headers, "Content-Type": request.content_type},
                )
                return response.status_code, response.text, dict(response.headers)

            errors = _run(send, keys)
            # A database fault mid-request: the driver's error names the statement (and, unless hidden,
            # its parameters: the client id, the scores).
            with sqlite3.connect(database) as connection:
                connection.execute("DROP TABLE clients")
            bearer = {"Authorization": f"Bearer {keys['key']}"}
            for response in (
                client.post(f"/v1/clients/{ID}-5/sessions", json=S1, headers=bearer),
                client.get(f"/v1/clients/{ID}", headers=bearer),
            ):
                assert response.status_code == 500, response.text
                errors.append(response.text)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = stdout.read_text(errors="replace") + stderr.read_text(errors="replace")
    assert "dropout_risk.access" in output and "OperationalError" in output  # the logs are there, and say what
    assert not _leaks(errors, IN_BODIES), "an error response carries a client id or a score"
    lines = [_without_timings(line) for line in output.splitlines()]
    assert not _leaks(lines, IN_LOGS), "the server printed a client id or a score"
