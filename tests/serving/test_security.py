"""Keys: every /v1 route needs one, a key sees only its clinic, and nothing tells absent from foreign."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from dropout_risk.serving import served_version
from dropout_risk.serving.db import transaction
from dropout_risk.serving.deps import (
    CLINIC_STATE,
    KEY_STATE,
    SERVED_STATE,
    Admin,
    ClinicId,
    ClinicOrAdmin,
    MaybeScoring,
    Model,
    Scoring,
    Work,
)
from dropout_risk.serving.keys import KeyError_, clinic_for_key, create_key, list_keys, revoke_key
from dropout_risk.serving.model_holder import ModelHolder
from dropout_risk.serving.ratelimit import RateLimiter
from dropout_risk.serving.tables import ApiKey, Clinic
from tests.support.serving import ADMIN_KEY

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}

ROUTES = [
    ("post", "/v1/clients/{cid}/sessions", S1),
    ("put", "/v1/clients/{cid}", {"age": 30}),
    ("get", "/v1/clients/{cid}", None),
    ("get", "/v1/clients/{cid}/risk", None),
    ("get", "/v1/clients", None),
    ("post", "/v1/score", {"sessions": [S1]}),
    ("get", "/v1/model", None),
    ("post", "/v1/admin/reload", None),
]


def _call(api, method, path, body, headers):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return getattr(api.client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_no_wrong_or_revoked_key_is_401(api, method, path, body):
    headers = api.new_clinic()
    path = path.format(cid="x1")
    assert _call(api, method, path, body, {}).status_code == 401
    assert _call(api, method, path, body, {"Authorization": "Bearer drk_not-a-key"}).status_code == 401
    assert _call(api, method, path, body, {"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    key = headers["Authorization"].removeprefix("Bearer ")
    with transaction(api.app.state.sessions) as db:
        assert revoke_key(db, key[:12]) == 1
    assert _call(api, method, path, body, headers).status_code == 401


def test_another_clinics_client_is_indistinguishable_from_an_absent_one(api):
    a, b = api.new_clinic(), api.new_clinic()
    assert api.client.post("/v1/clients/shared-id/sessions", json=S1, headers=a).status_code == 201
    for path in ("/v1/clients/shared-id", "/v1/clients/shared-id/risk"):
        foreign = api.client.get(path, headers=b)
        absent = api.client.get(path.replace("shared-id", "never-seen"), headers=b)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == absent.json()
    assert api.client.get("/v1/clients", headers=b).json()["total"] == 0
    # B may use the same identifier for its own client: a separate record, A's is untouched.
    assert (
        api.client.post("/v1/clients/shared-id/sessions", json={**S1, "scores": {"ors": 30.0}}, headers=b).status_code
        == 201
    )
    assert api.client.get("/v1/clients/shared-id", headers=a).json()["sessions"] == 1
    a_history = api.client.get("/v1/clients/shared-id/risk", headers=a).json()
    b_history = api.client.get("/v1/clients/shared-id/risk", headers=b).json()
    assert a_history["risk"]["probability"] != b_history["risk"]["probability"]


def test_admin_reload_needs_the_admin_key(api, champion):
    clinic = api.new_clinic()
    assert api.client.post("/v1/admin/reload", headers=clinic).status_code == 401
    response = api.client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    assert response.json() == {"swapped": False, "version": champion.version, "registry": "reachable"}
    # The admin key is not a clinic key: it reads no client data.
    assert api.client.get("/v1/clients", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 401


# --- the keys themselves (serving/keys.py), on the API's own database ---------------------------------


def test_a_key_is_256_random_bits_stored_only_as_its_digest(api):
    with transaction(api.app.state.sessions) as db:
        _, other = create_key(db, "digest-other-clinic")  # so the database never holds just one clinic
        first, record = create_key(db, "digest-clinic")
        second, again = create_key(db, "digest-clinic")
        stored = db.execute(select(ApiKey.key_hash, ApiKey.prefix).where(ApiKey.id == record.id)).one()
        clinics = db.scalars(select(Clinic.id).where(Clinic.name == "digest-clinic")).all()
    # "drk_" and 32 random bytes in URL-safe base64 (43 characters, no padding).
    assert first.startswith("drk_") and len(first) == 4 + 43 and first != second
    assert stored.key_hash == hashlib.sha256(first.encode()).hexdigest()
    assert stored.prefix == first[:12]
    # The second key joins the clinic the first one created.
    assert clinics == [record.clinic_id] and again.clinic_id == record.clinic_id != other.clinic_id
    with api.app.state.reader.connect() as connection:
        assert clinic_for_key(connection, first) == clinic_for_key(connection, second) == record.clinic_id


def test_revoking_takes_at_least_the_listed_prefix_and_counts_only_active_keys(api, monkeypatch):
    with transaction(api.app.state.sessions) as db:
        key, record = create_key(db, "revoke-clinic")
        with pytest.raises(KeyError_, match="first 12 characters"):
            revoke_key(db, key[:11])
    # Revocation times are UTC whatever the server's local time zone.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC)
        with transaction(api.app.state.sessions) as db:
            assert revoke_key(db, key) == 1  # the whole key: its first 12 characters are the prefix
            assert revoke_key(db, key[:12]) == 0  # already revoked
    finally:
        monkeypatch.undo()
        time.tzset()
    with transaction(api.app.state.sessions) as db:
        revoked_at = db.scalar(select(ApiKey.revoked_at).where(ApiKey.id == record.id))
    assert revoked_at is not None
    revoked_at = revoked_at if revoked_at.tzinfo else revoked_at.replace(tzinfo=dt.UTC)  # SQLite keeps no zone
    assert abs(revoked_at - before) < dt.timedelta(minutes=5)
    with api.app.state.reader.connect() as connection:
        assert clinic_for_key(connection, key) is None


def test_keys_are_listed_in_creation_order_with_their_clinic_and_state(api):
    with transaction(api.app.state.sessions) as db:
        first, _ = create_key(db, "listing-a")
        second, _ = create_key(db, "listing-b")
        revoke_key(db, first[:12])
        listed = list_keys(db)
        rows = {prefix: (clinic, revoked) for prefix, clinic, _, revoked in listed}
        order = [prefix for prefix, *_ in list_keys(db)]
    assert rows[first[:12]][0] == "listing-a" and rows[first[:12]][1] is not None
    assert rows[second[:12]] == ("listing-b", None)
    assert order.index(first[:12]) < order.index(second[:12]) == len(order) - 1
    assert all(len(prefix) == 12 and isinstance(created, dt.datetime) for prefix, _, created, _ in listed)


# --- the dependencies on their own (serving/deps.py): an app without the key-check middleware ---------


def _bare_app(api, holder, limiter: RateLimiter | None = None) -> TestClient:
    """Routes that only declare the dependencies, on the API's database and settings, without the key check.

    The real app's ``KeyCheckMiddleware`` checks the key before the route runs; ``require_clinic``'s own
    lookup is what an app without it relies on. A stand-in middleware passes on a clinic "already checked",
    and the served version and key digest the real one would have read. No rate limiter unless given.
    """
    app = FastAPI()
    for name in ("settings", "reader", "registry"):
        setattr(app.state, name, getattr(api.app.state, name))
    app.state.holder = holder
    if limiter is not None:
        app.state.limiter = limiter
    registry = api.app.state.registry

    @app.get("/clinic")
    async def clinic(clinic_id: ClinicId) -> dict:
        return {"clinic": clinic_id}

    @app.get("/admin")
    async def admin(_: Admin) -> dict:
        return {"admin": True}

    @app.get("/scoring")
    async def scoring(context: Scoring) -> dict:
        return {"version": context.version, "high": context.bands.high, "registry": context.registry is registry}

    @app.get("/maybe")
    async def maybe(context: MaybeScoring) -> dict:
        if context is None:
            return {"version": None}
        return {"version": context.version, "high": context.bands.high, "registry": context.registry is registry}

    @app.get("/model")
    async def model(loaded: Model) -> dict:
        return {"version": loaded.version}

    @app.get("/clinic-or-admin")
    async def clinic_or_admin(caller: ClinicOrAdmin) -> dict:
        return {"caller": caller}

    @app.post("/work")
    def work(meter: Work, sessions: int) -> dict:  # a worker thread, as the scoring route's
        meter.score(sessions)
        return {}

    @app.middleware("http")
    async def checked_upstream(request, call_next):
        # Stands in for KeyCheckMiddleware: a clinic it checked is taken as it is, with no second read.
        if "X-Checked-Clinic" in request.headers:
            setattr(request.state, CLINIC_STATE, int(request.headers["X-Checked-Clinic"]))
        if "X-Served" in request.headers:  # "version:generation", as read from served_models
            version, generation = request.headers["X-Served"].split(":")
            setattr(request.state, SERVED_STATE, served_version.Served(version, int(generation)))
        if "X-Key-Digest" in request.headers:
            setattr(request.state, KEY_STATE, request.headers["X-Key-Digest"])
        return await call_next(request)

    return TestClient(app)


def test_require_clinic_checks_the_key_itself_without_the_middleware(api):
    name, headers = api.add_clinic()
    key = headers["Authorization"].removeprefix("Bearer ")
    with transaction(api.app.state.sessions) as db:
        clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == name))
    client = _bare_app(api, api.app.state.holder)
    assert client.get("/clinic", headers=headers).json() == {"clinic": clinic_id}
    assert client.get("/clinic", headers={"Authorization": f"bearer {key}"}).json() == {"clinic": clinic_id}
    for bad in ({}, {"Authorization": "Bearer drk_not-a-key"}, {"Authorization": f"Basic {key}"}):
        response = client.get("/clinic", headers=bad)
        assert response.status_code == 401
        assert response.json() == {"detail": "missing, unknown or revoked API key"}
        assert response.headers["WWW-Authenticate"] == "Bearer"
    with transaction(api.app.state.sessions) as db:
        revoke_key(db, key[:12])
    assert client.get("/clinic", headers=headers).status_code == 401
    # A clinic the middleware already checked is used as it is: no header needed, no second lookup.
    assert client.get("/clinic", headers={"X-Checked-Clinic": "7"}).json() == {"clinic": 7}


def test_admin_needs_exactly_the_admin_key(api):
    client = _bare_app(api, api.app.state.holder)
    assert client.get("/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json() == {"admin": True}
    for bad in ({}, {"Authorization": f"Bearer {ADMIN_KEY}x"}, {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"}):
        assert client.get("/admin", headers=bad).status_code == 401


def test_scoring_uses_the_loaded_model_and_is_503_without_one(api, champion):
    client = _bare_app(api, api.app.state.holder)
    bands = api.app.state.settings.serving.bands
    expected = {"version": champion.version, "high": bands.high, "registry": True}
    assert client.get("/scoring").json() == client.get("/maybe").json() == expected
    # Nothing loaded and no process serving it: a holder of the served model would load the version the
    # shared served_models row names first (issue 17: no answer from an older version than another process's).
    empty = _bare_app(api, ModelHolder("models:/no-model-served-here@champion"))
    response = empty.get("/scoring")
    assert response.status_code == 503 and response.json() == {"detail": "no model loaded yet"}
    assert empty.get("/maybe").json() == {"version": None}


class _RecordingHolder:
    """A holder serving version "1" at generation 0 that records the served versions it is asked to catch up to."""

    def __init__(self) -> None:
        self.name = f"recording-{uuid.uuid4().hex}"  # a served_models row of its own in the shared database
        self.generation = 0
        self.current = SimpleNamespace(version="1")
        self.caught_up: list[served_version.Served] = []

    def behind(self, served: served_version.Served | None) -> bool:
        return served is not None and served.generation > self.generation

    def catch_up(self, served: served_version.Served) -> None:
        self.caught_up.append(served)
        self.current = SimpleNamespace(version=served.version)
        self.generation = served.generation


def test_a_process_behind_the_served_version_loads_it_before_answering(api):
    holder = _RecordingHolder()
    client = _bare_app(api, holder)
    # No row for the model yet: nothing to catch up to.
    assert client.get("/model").json() == {"version": "1"} and holder.caught_up == []
    # Another process switched to version 2: without a key check this request reads the row itself.
    served_version.announce(api.app.state.engine, holder.name, "2")
    assert client.get("/model").json() == {"version": "2"}
    assert holder.caught_up == [served_version.Served("2", 1)]
    assert client.get("/model").json() == {"version": "2"} and len(holder.caught_up) == 1  # caught up: no reload
    # The version the key check read on its connection is the one followed, not a second read of the row.
    assert client.get("/model", headers={"X-Served": "5:3"}).json() == {"version": "5"}
    assert holder.caught_up[-1] == served_version.Served("5", 3)


def test_the_admin_key_reads_every_clinic_and_a_clinic_key_its_own(api):
    name, headers = api.add_clinic()
    with transaction(api.app.state.sessions) as db:
        clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == name))
    client = _bare_app(api, api.app.state.holder)
    admin = client.get("/clinic-or-admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.json() == {"caller": None}
    assert client.get("/clinic-or-admin", headers=headers).json() == {"caller": clinic_id}
    for bad in ({}, {"Authorization": "Bearer drk_not-a-key"}, {"Authorization": f"Bearer {ADMIN_KEY}x"}):
        assert client.get("/clinic-or-admin", headers=bad).status_code == 401


def test_long_work_is_charged_to_the_checked_keys_bucket_and_free_without_a_limiter_or_key(api):
    per_token = api.app.state.settings.serving.rate_limit_sessions
    limiter = RateLimiter(rate=1e-6, burst=3)  # no refill within the test
    assert limiter.wait("digest") == 0.0  # the key check's token: 2 left
    client = _bare_app(api, api.app.state.holder, limiter)
    key = {"X-Key-Digest": "digest"}
    assert client.post(f"/work?sessions={per_token}", headers=key).status_code == 200  # one block: paid already
    assert client.post(f"/work?sessions={2 * per_token + 1}", headers={}).status_code == 200  # no key: nobody pays
    assert limiter.wait("digest") == 0.0  # so 1 left after this one
    assert client.post(f"/work?sessions={per_token + 1}", headers=key).status_code == 200  # two blocks: 1 more
    assert limiter.wait("digest") > 0
    # An app without a limiter (none configured) or a key check lets the work through uncharged.
    assert _bare_app(api, api.app.state.holder).post(f"/work?sessions={5 * per_token}", headers=key).status_code == 200
