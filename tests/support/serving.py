"""The API in-process for tests: its settings, and a handle with which each test gets a clinic of its own."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from dropout_risk.serving.db import make_engine, transaction
from dropout_risk.serving.keys import create_key
from dropout_risk.serving.settings import FhirConfig, ServingConfig, ServingSettings
from tests.support.fhir import CLINIC_CODES

ADMIN_KEY = "admin-test-key"
_clinics = itertools.count()


def serving_settings(database_url: str, **serving: Any) -> ServingSettings:
    """Settings for an app on ``database_url`` that never polls the registry by itself (tests reload it).

    No rate limit or in-flight cap unless a test sets one: tests drive one key far faster than a clinic would.
    ORS and SRS carry a clinic's own FHIR codes (tests/support/fhir.py).
    """
    return ServingSettings(
        database_url=database_url,
        admin_key=SecretStr(ADMIN_KEY),
        serving=ServingConfig(**{"poll_interval_seconds": 3600, "rate_limit": 0, "max_inflight_per_key": 0, **serving}),
        fhir=FhirConfig(codes=CLINIC_CODES),  # ORS and SRS in a clinic's own code system (no LOINC code)
    )


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    backend: str

    def add_clinic(self) -> tuple[str, dict[str, str]]:
        """A fresh clinic's name and Authorization headers: tests never see each other's clients."""
        name = f"clinic-{next(_clinics)}"
        with transaction(self.app.state.sessions) as db:
            key, _ = create_key(db, name)
        return name, {"Authorization": f"Bearer {key}"}

    def new_clinic(self) -> dict[str, str]:
        return self.add_clinic()[1]


def login(api: Api, headers: dict[str, str]) -> str:
    """Sign a TestClient in to the dashboard with the clinic's key; the CSRF token of the new session."""
    page = api.client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    key = headers["Authorization"].removeprefix("Bearer ")
    response = api.client.post("/ui/login", data={"key": key, "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/clients"
    assert key not in response.headers["location"]
    page = api.client.get("/ui/clients")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def drop_api_tables(url: str) -> None:
    """Empty a shared PostgreSQL database of the API's tables, for the next module's app to migrate afresh."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS cds_token_ids, webhook_deliveries, webhook_endpoints, recalibrations,"
                " served_models, dashboard_sessions, sessions, clients, api_keys, clinics, alembic_version CASCADE"
            )
        )
    engine.dispose()
