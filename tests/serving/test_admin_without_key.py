"""With no admin key configured the admin route is shut: no header, a clinic's key or any bearer gets 401."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dropout_risk.serving.app import create_app
from dropout_risk.serving.settings import ServingConfig, ServingSettings
from tests.support.mlflow_store import active_store
from tests.support.serving import ADMIN_KEY, Api


@pytest.fixture(scope="module", params=[None, ""], ids=["unset", "empty"])
def keyless_api(request, champion, tmp_path_factory) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path_factory.mktemp('keyless')}/dropout_risk.db"
    settings = ServingSettings(
        database_url=url, admin_key=request.param, serving=ServingConfig(poll_interval_seconds=3600)
    )
    assert not settings.admin_key or not settings.admin_key.get_secret_value()
    with active_store(champion.store):
        app = create_app(settings, poll=False)
        with TestClient(app) as client:
            yield Api(client, app, "sqlite")


@pytest.mark.parametrize(
    "authorization",
    [None, "clinic", "Bearer drk_random-bearer-0123456789", "Bearer admin", f"Bearer {ADMIN_KEY}", "Bearer None"],
)
def test_admin_reload_is_closed_to_every_caller(keyless_api, authorization):
    if authorization == "clinic":
        headers = keyless_api.new_clinic()
    else:
        headers = {} if authorization is None else {"Authorization": authorization}
    response = keyless_api.client.post("/v1/admin/reload", headers=headers)
    assert response.status_code in (401, 404), response.text
    assert "swapped" not in response.text


def test_clinic_routes_still_work_without_an_admin_key(keyless_api):
    # The 401s above come from the admin check, not from an app that refuses everyone.
    headers = keyless_api.new_clinic()
    assert keyless_api.client.get("/v1/clients", headers=headers).status_code == 200
