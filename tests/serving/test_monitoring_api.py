"""Monitoring on a simulated deployment through the real API (issue 13), on SQLite and PostgreSQL.

The champion learnt from a cohort with 25% dropout. One clinic replays 250 clients of a population
with 40% dropout and outcome scores half an SD more severe; another 250 clients of a population
simulated like the training data. Each client's sessions are posted one by one and the episode
closed with PUT (tests/support/replay.py). The populations are those of
tests/serving/test_monitoring_seeds.py, which checks ten clinics of each kind at the service function.
"""

from __future__ import annotations

import re

import pytest

from tests.serving.test_monitoring_seeds import CLINICS, PER_CLINIC, SHIFTED
from tests.support.replay import clinic_sample, dropout_share, replay
from tests.support.serving import ADMIN_KEY

N_CLIENTS = PER_CLINIC  # block 0 of each population, as in test_monitoring_seeds


def _monitoring(api, headers, **params):
    response = api.client.get("/v1/monitoring", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.reliability  # about 20 s a backend: 500 clients posted session by session
def test_a_shifted_clinic_is_recalibrate_with_intake_drift_and_a_like_one_stays_ok(api, cohorts, champion):
    shifted_name, shifted = api.add_clinic()
    like_name, like = api.add_clinic()
    shifted_cohort = clinic_sample(cohorts.simulate(CLINICS * PER_CLINIC, seed=32, **SHIFTED), 0, N_CLIENTS)
    assert dropout_share(shifted_cohort) > 0.33
    replay(api.client, shifted, shifted_cohort)
    replay(api.client, like, clinic_sample(cohorts.simulate(CLINICS * PER_CLINIC, seed=18), 0, N_CLIENTS))

    report = _monitoring(api, shifted)
    assert report["model_version"] == champion.version and report["reference_profile"] is True
    assert [c["clinic"] for c in report["clinics"]] == [shifted_name] and report["service"] is None
    clinic = report["clinics"][0]
    current = clinic["current"]
    assert current["episodes"] >= report["min_ended"]
    assert current["oe_ci"][0] > 1, current
    assert clinic["status"]["status"] == "recalibrate", clinic["status"]
    assert clinic["status"]["figures"]["oe_ci_low"] == current["oe_ci"][0]
    assert any(d["what"] == "ors intake" and d["measure"] == "distribution" and d["drifted"] for d in clinic["drift"])
    months = {g["month"] for g in clinic["by_version_month"]}
    assert months and all(re.fullmatch(r"\d{4}-\d{2}", m) for m in months)
    assert sum(g["performance"]["episodes"] for g in clinic["by_version_month"]) == current["episodes"]

    like_clinic = _monitoring(api, like)["clinics"][0]
    assert like_clinic["status"]["status"] == "ok", like_clinic["status"]
    assert not any(d["drifted"] for d in like_clinic["drift"])

    response = api.client.get("/v1/monitoring", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert "C00" not in response.text  # aggregates only: no client id (the cohorts' ids are C00001...)
    admin = response.json()
    assert {shifted_name, like_name} <= {c["clinic"] for c in admin["clinics"]}
    assert admin["service"]["current"]["episodes"] >= 2 * report["min_ended"]
    metrics = api.client.get("/metrics").text
    assert re.search(rf'dropout_risk_monitoring_status{{clinic="{shifted_name}",worker="\d+"}} 2\.0', metrics)
    assert re.search(rf'dropout_risk_monitoring_status{{clinic="{like_name}",worker="\d+"}} 0\.0', metrics)


def test_monitoring_takes_a_clinic_key_or_the_admin_key_only(api):
    name, headers = api.add_clinic()
    assert api.client.get("/v1/monitoring").status_code == 401
    assert api.client.get("/v1/monitoring", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.client.get("/v1/monitoring", headers=headers, params={"clinic": "other"}).status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert api.client.get("/v1/monitoring", headers=admin, params={"clinic": "no-such"}).status_code == 404
    one = _monitoring(api, admin, clinic=name)
    assert [c["clinic"] for c in one["clinics"]] == [name]
    assert one["clinics"][0]["status"]["status"] == "ok" and one["clinics"][0]["current"] is None
