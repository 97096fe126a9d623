"""Schemathesis fuzzes every operation of the OpenAPI schema with a valid key.

Two properties, for valid (positive) and invalid (negative) requests alike: the
service never answers 5xx, and every answer (status, content type, headers,
body) is one the schema documents. Invalid requests must be rejected (4xx), and
an operation that declares a key must refuse a request without one.

Positive cases hit random client ids (mostly absent: 404) and a few seeded
clients that have sessions (200s, 409 conflicts, 422 gaps), so the success
bodies are checked against the schema too. Valid histories, which the schema
alone rarely produces (known instruments, scores in range, dates never going
back), are generated separately: scored statelessly and recorded session by
session, they must give 200s and 201s and the same risk. SQLite is enough
here: the schema does not depend on the database. DROPOUT_RISK_FUZZ_EXAMPLES
sets the examples per operation (40; a deep run: 400).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.session_rules import FIRST_DATE, LAST_DATE
from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import create_key
from tests.support.mlflow_store import active_store
from tests.support.serving import ADMIN_KEY, serving_settings

pytestmark = pytest.mark.reliability  # fuzzing: `make test` runs it, `make test-fast` does not


def _documented() -> dict:
    """The schema's operations, read at collection from an app that is never started (no database, no model)."""
    return create_app(serving_settings("sqlite://"), poll=False).openapi()["paths"]


PATHS = _documented()
# Every operation the schema documents, valid requests; invalid ones for those that take any input.
CASES = [
    (method.upper(), path, mode)
    for path, operations in PATHS.items()
    for method, spec in operations.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or spec.get("parameters") or spec.get("requestBody")
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
EXAMPLES = int(os.environ.get("DROPOUT_RISK_FUZZ_EXAMPLES", "40"))  # per operation and mode; more for a deep run
SEEDED = ("seeded-1", "seeded-2", "seeded-3")
SESSIONS = [
    {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}},
    {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 19.0, "srs": 38.0}, "missed_since_last": 1},
    {"session_number": 3, "session_date": "2025-03-17", "scores": {"phq9": 12.0}},
]


@dataclass
class Fuzz:
    schema: object
    client: object
    clinic_headers: dict[str, str]
    statuses: Counter = field(default_factory=Counter)


@pytest.fixture(scope="module")
def fuzz(champion, tmp_path_factory) -> Iterator[Fuzz]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/dropout_risk.db"
    app = create_app(serving_settings(url), poll=False)
    with active_store(champion.store):
        try:
            with asgi.get_client(app) as client:  # runs the lifespan: migrations, the champion loaded
                with transaction(app.state.sessions) as db:
                    key, _ = create_key(db, "fuzz-clinic")
                headers = {"Authorization": f"Bearer {key}"}
                for n, client_id in enumerate(SEEDED, start=1):
                    for body in SESSIONS[:n]:
                        response = client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers)
                        assert response.status_code == 201, response.text
                schema = schemathesis.openapi.from_asgi("/openapi.json", app)
                schema.config.generation.update(with_security_parameters=False)
                # Failure reports mask the key but show the sessions (schemathesis masks anything named "session*").
                sanitization = schema.config.output.sanitization
                sanitization.sensitive_markers = tuple(m for m in sanitization.sensitive_markers if m != "session")
                fuzz = Fuzz(schema, client, headers)
                yield fuzz
        finally:
            asgi.shutdown_lifespans()
    print(f"\nfuzz: {sum(fuzz.statuses.values())} requests, statuses {dict(sorted(fuzz.statuses.items()))}")


def test_every_operation_is_fuzzed(fuzz):
    served = {(op.ok().method.upper(), op.ok().path) for op in fuzz.schema.get_all_operations()}
    assert served == {(method, path) for method, path, _mode in CASES}
    assert {"/v1/clients/{client_id}/sessions", "/v1/score", "/v1/admin/reload"} <= {path for _m, path, _ in CASES}


def _strategy(operation, mode: GenerationMode):
    strategy = operation.as_strategy(mode)
    if mode is GenerationMode.POSITIVE and "{client_id}" in operation.path:
        # Seeded clients too, or every client-id route would only ever answer 404.
        strategy = st.one_of(
            strategy, *(operation.as_strategy(mode, path_parameters={"client_id": client_id}) for client_id in SEEDED)
        )
    return strategy


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_fuzz(fuzz, method, path, mode):
    operation = fuzz.schema[path][method]
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if path.startswith("/v1/admin/") else fuzz.clinic_headers

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=_strategy(operation, mode))
    def run(case):
        response = case.call_and_validate(session=fuzz.client, headers=headers, checks=CHECKS)
        fuzz.statuses[response.status_code] += 1

    run()


INSTRUMENTS = default_registry()


@st.composite
def histories(draw, max_sessions: int = 12) -> list[dict]:
    """Valid histories the schema alone rarely produces: known instruments in range, dates never going back."""
    n = draw(st.integers(1, max_sessions))
    first = draw(st.dates(FIRST_DATE, LAST_DATE))  # the contract's date range, edges included
    sessions, day = [], first
    for number in range(1, n + 1):
        if number > 1:
            gap = draw(st.integers(0, 400))
            day = min(day + dt.timedelta(days=gap), LAST_DATE)
        keys = draw(st.lists(st.sampled_from(sorted(INSTRUMENTS)), unique=True, max_size=4))
        scores = {k: draw(st.floats(INSTRUMENTS[k].min, INSTRUMENTS[k].max)) for k in keys}
        session = {"session_number": number, "session_date": day.isoformat(), "scores": scores}
        if draw(st.booleans()):
            session["missed_since_last"] = draw(st.integers(0, 365))
        sessions.append(session)
    return sessions


# Valid covariates (serving.covariates: no contract column names, numbers within 1e9, age 0-120).
covariates = st.builds(
    lambda others, age: {**others, **age},
    st.dictionaries(
        st.sampled_from(["gender", "therapist_id", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**6), 10**6),
            st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
            st.text(max_size=20),
        ),
    ),
    st.dictionaries(st.just("age"), st.one_of(st.none(), st.integers(0, 120), st.floats(0, 120), st.text(max_size=20))),
)


_recorded = itertools.count()


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(max_sessions=8), extra=covariates)
def test_valid_histories_are_scored_and_recorded_alike(fuzz, history, extra):
    """Any valid history: /v1/score answers 200, and recording it session by session (covariates PUT first)
    answers 201 each time and ends on the very same risk; every answer conforms to the schema."""
    schema, headers = fuzz.schema, fuzz.clinic_headers

    def send(path: str, method: str, body: dict, client_id: str | None = None):
        operation = schema[path][method]
        case = operation.Case(
            body=body, media_type="application/json", path_parameters={"client_id": client_id} if client_id else None
        )
        response = case.call_and_validate(session=fuzz.client, headers=headers, checks=CHECKS)
        fuzz.statuses[response.status_code] += 1
        return response

    scored = send("/v1/score", "POST", {"sessions": history, "covariates": extra})
    assert scored.status_code == 200, scored.text
    client_id = f"recorded-{next(_recorded)}"
    assert send("/v1/clients/{client_id}", "PUT", {"covariates": extra}, client_id).status_code == 200
    for session in history:
        recorded = send("/v1/clients/{client_id}/sessions", "POST", session, client_id)
        assert recorded.status_code == 201, recorded.text
    assert recorded.json()["risk"] == scored.json()["risk"]
