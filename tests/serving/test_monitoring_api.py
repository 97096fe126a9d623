"""Monitoring on a simulated deployment through the real API (issue 13), on SQLite and PostgreSQL.

The champion learnt from a cohort with 25% dropout. One clinic replays 250 clients of a population
with 40% dropout and outcome scores half an SD more severe; another 150 clients of a population
simulated like the training data. Each client's sessions are posted one by one and the episode
closed with PUT (tests/support/replay.py). The populations are those of
tests/serving/test_monitoring_seeds.py, which checks ten clinics of each kind at the service function.

The shifted clinic is read after its first 100 clients (fewer ended episodes than monitoring.min_ended)
and after all 250; then the real ``recalibrate --clinic`` command fits its update, and the later part
of the shifted cohort is served through it (docs/testing.md, "Monitoring after deployment").
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.models.local_update import update_probability
from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import make_engine, transaction
from dropout_risk.serving.leader import Leadership
from dropout_risk.serving.monitoring.html import render
from dropout_risk.serving.monitoring.report import Monitoring
from dropout_risk.serving.recalibration import revert, store
from dropout_risk.serving.settings import MonitoringConfig
from dropout_risk.serving.tables import Client, Clinic, Recalibration
from dropout_risk.training.simulation.cohort import Cohort
from tests.serving.test_monitoring_seeds import CLINICS, PER_CLINIC, SHIFTED
from tests.support.mlflow_store import active_store
from tests.support.replay import batch_risks, clients, clinic_sample, dropout_share, replay, replay_fhir
from tests.support.serving import ADMIN_KEY, Api, login, serving_settings

N_CLIENTS = PER_CLINIC  # block 0 of each population, as in test_monitoring_seeds
N_LIKE = 150  # the like clinic: fewer (PostgreSQL takes about 13 ms a request here)
FIRST = 100  # the shifted clinic's first part: fewer ended episodes than monitoring.min_ended (100)
FITTED = 4  # recalibrate --clinic fits on blocks 0 (session by session) to 3 (FHIR Bundles) of the shifted population
LATER = 3  # blocks served after it: block FITTED session by session, the next ones in FHIR Bundles


def _monitoring(api, headers, **params):
    response = api.client.get("/v1/monitoring", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _recalibrate(api, clinic: str, champion, monkeypatch) -> int:
    """``dropout-risk recalibrate --clinic`` (the real command) against the app's own database."""
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", api.app.state.settings.database_url)
    with active_store(champion.store):
        result = CliRunner().invoke(
            cli, ["recalibrate", "--clinic", clinic, "--reason", "O/E CI above 1", "--by", "test", "--yes"]
        )
    assert result.exit_code == 0, result.output
    return int(re.search(r"stored recalibration (\d+)", result.output).group(1))  # type: ignore[union-attr]


def _below_the_minimum(api, headers, config: MonitoringConfig) -> None:
    """Fewer ended episodes than monitoring.min_ended: whatever the O/E, not yet ``recalibrate``."""
    status = _monitoring(api, headers)["clinics"][0]["status"]
    episodes = status["figures"]["ended_episodes"]
    print(f"{api.backend}: first part {episodes} episodes: {status['status']}, {status['rule']}")
    assert 0 < status["figures"]["ended_episodes"] < config.min_ended
    assert status["status"] == "watch", status
    assert f"fewer than monitoring.min_ended={config.min_ended}" in status["rule"] or "drift" in status["rule"]


def _the_shifted_clinic_is_recalibrate(api, headers, champion) -> int:
    report = _monitoring(api, headers)
    assert report["model_version"] == champion.version and report["reference_profile"] is True
    assert len(report["clinics"]) == 1 and report["service"] is None
    clinic = report["clinics"][0]
    current = clinic["current"]
    print(f"{api.backend}: shifted clinic {current['episodes']} episodes, O/E {current['oe']:.2f} {current['oe_ci']}")
    assert current["episodes"] >= report["min_ended"]
    assert current["oe_ci"][0] > 1, current
    assert clinic["status"]["status"] == "recalibrate", clinic["status"]
    assert clinic["status"]["figures"]["oe_ci_low"] == current["oe_ci"][0]
    assert any(d["what"] == "ors intake" and d["measure"] == "distribution" and d["drifted"] for d in clinic["drift"])
    months = {g["month"] for g in clinic["by_version_month"]}
    assert months and all(re.fullmatch(r"\d{4}-\d{2}", m) for m in months)
    assert sum(g["performance"]["episodes"] for g in clinic["by_version_month"]) == current["episodes"]
    return current["episodes"]


def _the_like_clinic_is_ok_and_the_admin_sees_both(api, like, names: tuple[str, str], shifted_episodes: int) -> None:
    shifted_name, like_name = names
    like_clinic = _monitoring(api, like)["clinics"][0]
    assert like_clinic["status"]["status"] == "ok", like_clinic["status"]
    assert not any(d["drifted"] for d in like_clinic["drift"])
    response = api.client.get("/v1/monitoring", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert "C00" not in response.text  # aggregates only: no client id (the cohorts' ids are C00001...)
    admin = response.json()
    assert {shifted_name, like_name} <= {c["clinic"] for c in admin["clinics"]}
    assert admin["service"]["current"]["episodes"] >= shifted_episodes + like_clinic["current"]["episodes"]
    metrics = api.client.get("/metrics").text
    assert re.search(rf'dropout_risk_monitoring_status{{clinic="{shifted_name}",worker="\d+"}} 2\.0', metrics)
    assert re.search(rf'dropout_risk_monitoring_status{{clinic="{like_name}",worker="\d+"}} 0\.0', metrics)


def _last_risks(api, cohort: Cohort, recalibration: tuple[int, float, float]) -> dict[str, float]:
    """Each client's risk at the last session replay posts, batch-scored through ``recalibration``."""
    _, risks = batch_risks(cohort, api.app.state.holder.current.compiled, recalibration)
    return {str(k): float(v) for k, v in risks.groupby("client_id")["risk"].last().items()}


def _recalibration(api, rid: int) -> Recalibration:
    with transaction(api.app.state.sessions) as db:
        row = db.get(Recalibration, rid)
        db.expunge(row)
        return row


def _risks(api, headers, client_ids: list[str]) -> list[dict]:
    return [api.client.get(f"/v1/clients/{c}/risk", headers=headers).json() for c in client_ids]


@pytest.mark.slow  # 60-120 s a backend: 650 clients posted session by session, 1,250 in FHIR Bundles
def test_a_shifted_clinic_is_recalibrate_once_the_minimum_is_reached_and_calibrated_after_recalibrate(
    api, cohorts, champion, monkeypatch
):
    shifted_name, shifted = api.add_clinic()
    like_name, like = api.add_clinic()
    population = cohorts.simulate(CLINICS * PER_CLINIC, seed=32, **SHIFTED)
    block = clinic_sample(population, 0, N_CLIENTS)
    assert dropout_share(block) > 0.33
    replay(api.client, shifted, clients(block, 0, FIRST))
    _below_the_minimum(api, shifted, api.app.state.settings.monitoring)
    replay(api.client, shifted, clients(block, FIRST, N_CLIENTS))
    like_ids = list(replay(api.client, like, clinic_sample(cohorts.simulate(CLINICS * PER_CLINIC, seed=18), 0, N_LIKE)))
    episodes = _the_shifted_clinic_is_recalibrate(api, shifted, champion)
    _the_like_clinic_is_ok_and_the_admin_sees_both(api, like, (shifted_name, like_name), episodes)

    like_before = _risks(api, like, like_ids[:20])
    for i in range(1, FITTED):  # more of the clinic's clients before the fit, through POST /fhir/r4
        replay_fhir(api.client, shifted, clinic_sample(population, i, PER_CLINIC))
    rid = _recalibrate(api, shifted_name, champion, monkeypatch)
    later = clinic_sample(population, FITTED, PER_CLINIC)  # the shifted cohort's later part, through the API
    served = replay(api.client, shifted, later)
    row = _recalibration(api, rid)
    expected = _last_risks(api, later, (rid, row.intercept, row.slope))
    assert served.keys() == expected.keys()
    assert [served[c] for c in expected] == pytest.approx([expected[c] for c in expected], abs=1e-12)
    for i in range(FITTED + 1, FITTED + LATER):
        replay_fhir(api.client, shifted, clinic_sample(population, i, PER_CLINIC))
    clinic = _monitoring(api, shifted)["clinics"][0]
    after = clinic["since_recalibration"]
    print(
        f"{api.backend}: recalibration {rid} (a {row.intercept:.3f}, fitted on {row.episodes}): "
        f"{after['episodes']} episodes, "
        f"O/E {after['oe']:.2f} {after['oe_ci']}, ECE {after['ece']:.3f}; {clinic['status']['status']}: "
        f"{clinic['status']['rule']}"
    )
    assert clinic["recalibration"]["id"] == rid and after["episodes"] >= 600
    status = clinic["status"]  # judged on the risks served through the recalibration only
    assert status["status"] != "recalibrate" and f"through recalibration {rid}" in status["rule"], status
    assert status["figures"]["ended_episodes"] == after["episodes"] and status["figures"]["recalibration"] == rid
    assert after["oe_ci"][0] < 1 < after["oe_ci"][1] and after["ece"] <= 0.03, after
    assert _risks(api, like, like_ids[:20]) == like_before  # the other clinic's risks: bit-identical JSON


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


S = [
    {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}},
    {"session_number": 2, "session_date": "2025-03-10", "scores": {"ors": 16.0, "srs": 29.5}, "missed_since_last": 1},
    {"session_number": 3, "session_date": "2025-03-17", "scores": {"ors": 18.0, "srs": 36.0}},
]


def _store_recalibration(api, clinic: str, version: str, intercept: float) -> int:
    with transaction(api.app.state.sessions) as db:
        clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == clinic))
        row = Recalibration(
            clinic_id=clinic_id,
            model_version=version,
            method="intercept",
            intercept=intercept,
            slope=1.0,
            episodes=100,
            evaluation={},
            created_by="test",
            reason="test",
        )
        return store(db, row).id


def test_a_recalibration_moves_its_clinics_risks_only_and_says_so(api, champion):
    name, mine = api.add_clinic()
    other_name, other = api.add_clinic()
    for headers in (mine, other):
        for body in S[:2]:
            assert api.client.post("/v1/clients/x/sessions", json=body, headers=headers).status_code == 201
    before = {n: api.client.get("/v1/clients/x/risk", headers=h).json() for n, h in (("mine", mine), ("other", other))}
    stateless = api.client.post("/v1/score", json={"sessions": S}, headers=other).json()
    assert before["mine"]["risk"]["recalibration"] is None

    rid = _store_recalibration(api, name, champion.version, 0.5)
    after = api.client.get("/v1/clients/x/risk", headers=mine).json()
    assert after["risk"]["recalibration"] == rid
    for new, old in zip(after["history"], before["mine"]["history"], strict=True):
        assert new["probability"] == pytest.approx(update_probability(old["probability"], 0.5, 1.0)[()], abs=1e-12)
    recorded = api.client.post("/v1/clients/x/sessions", json=S[2], headers=mine).json()["risk"]
    assert recorded["recalibration"] == rid
    scored = api.client.post("/v1/score", json={"sessions": S}, headers=mine).json()["risk"]
    assert scored["recalibration"] == rid and scored["probability"] == pytest.approx(recorded["probability"], abs=1e-12)
    assert scored["probability"] > stateless["risk"]["probability"]

    # The other clinic's risks are bit-identical: the same JSON, the same floats.
    assert api.client.get("/v1/clients/x/risk", headers=other).json() == before["other"]
    assert api.client.post("/v1/score", json={"sessions": S}, headers=other).json() == stateless
    assert api.client.post("/v1/clients/x/sessions", json=S[2], headers=other).json()["risk"] == stateless["risk"]

    with transaction(api.app.state.sessions) as db:
        assert revert(db, db.scalar(select(Clinic.id).where(Clinic.name == name)), champion.version, "test").id == rid
    assert api.client.get("/v1/clients/x/risk", headers=mine).json()["history"][:2] == before["mine"]["history"]


def test_a_new_champion_does_not_inherit_a_recalibration_the_monitor_says_so(api, champion):
    name, headers = api.add_clinic()
    rid = _store_recalibration(api, name, "0", 0.4)  # fitted for an older version than the one served
    assert api.client.post("/v1/clients/y/sessions", json=S[0], headers=headers).json()["risk"]["recalibration"] is None
    clinic = _monitoring(api, headers)["clinics"][0]
    assert clinic["status"]["status"] == "recalibrate" and clinic["recalibration"]["id"] == rid
    assert f"recalibration {rid} was fitted for model version 0" in clinic["status"]["rule"]


def test_the_dashboard_page_shows_the_clinics_monitoring(api, champion):
    name, headers = api.add_clinic()
    for client_id in ("a", "b"):
        for body in S:
            assert api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers).status_code == 201
    ended = {"status": "dropout", "ended_on": "2025-04-01"}
    assert api.client.put("/v1/clients/a", json=ended, headers=headers).status_code == 200
    api.client.cookies.clear()
    assert api.client.get("/ui/monitoring", follow_redirects=False).headers["location"] == "/ui/login"
    login(api, headers)
    page = api.client.get("/ui/monitoring")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert name in page.text and re.search(r"data-status>(ok|watch|recalibrate|retrain)<", page.text)
    assert "2025-04" in page.text and 'src="data:image/png;base64,' in page.text  # the month ended, the plot
    assert ">a<" not in page.text and ">b<" not in page.text  # aggregates only
    assert "data-older-model" not in api.client.get("/ui/clients").text
    with transaction(api.app.state.sessions) as db:  # b's current risk as if an older model had served it
        db.execute(update(Client).where(Client.external_id == "b").values(current_model_version="0"))
    caseload = api.client.get("/ui/clients").text
    assert "data-older-model" in caseload and "1 risk on this page from model version 0." in " ".join(caseload.split())
    assert "data-since-recalibration" not in page.text
    rid = _store_recalibration(api, name, champion.version, 0.3)
    for body in S:  # a client served through the recalibration from its first session
        assert api.client.post("/v1/clients/c/sessions", json=body, headers=headers).status_code == 201
    assert api.client.put("/v1/clients/c", json=ended, headers=headers).status_code == 200
    page = api.client.get("/ui/monitoring").text
    assert "data-since-recalibration" in page and f"through recalibration {rid}" in page
    report = Monitoring.model_validate(_monitoring(api, headers))
    assert report.clinics[0].since_recalibration is not None and report.clinics[0].since_recalibration.episodes == 1
    assert f"through recalibration {rid}" in render(report, None)  # dropout-risk monitor --html
    api.client.cookies.clear()


def test_a_clinic_key_is_rate_limited_on_the_monitor_and_the_admin_key_goes_through(champion, tmp_path):
    with active_store(champion.store):
        app = create_app(serving_settings(f"sqlite:///{tmp_path}/db.sqlite", rate_limit=0.1, rate_limit_burst=1))
        with TestClient(app) as client:
            _, headers = Api(client, app, "sqlite").add_clinic()
            assert client.get("/v1/monitoring", headers=headers).status_code == 200
            assert client.get("/v1/monitoring", headers=headers).status_code == 429  # the per-key limit, as elsewhere
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            assert [client.get("/v1/monitoring", headers=admin).status_code for _ in range(2)] == [200, 200]


def test_only_the_leading_process_publishes_the_gauges_a_get_computes(api):
    """A process that does not lead answers GET /v1/monitoring but leaves /metrics to the leader (serving.leader).

    On SQLite the one process always leads: only the second half applies there.
    """
    name, headers = api.add_clinic()
    if api.backend == "postgresql":
        leader = api.app.state.leader
        engine = make_engine(api.app.state.settings.database_url)
        follower = Leadership(engine)
        try:
            assert leader.held() and not follower.held()  # the app's own process leads
            api.app.state.leader = follower  # as if another process held the lock
            assert _monitoring(api, headers)["clinics"][0]["clinic"] == name
            assert f'clinic="{name}"' not in api.client.get("/metrics").text
        finally:
            api.app.state.leader = leader
            follower.release()
            engine.dispose()
    _monitoring(api, headers)
    assert f'dropout_risk_monitoring_status{{clinic="{name}"' in api.client.get("/metrics").text


def test_the_report_gives_the_validation_auc_and_apart_the_low_end_the_retrain_rule_uses(api):
    """The report once named the interval's low end ``validation_within_landmark_auc``: a reader took 0.57 for 0.64."""
    _, headers = api.add_clinic()
    report = _monitoring(api, headers)
    metrics = api.app.state.holder.current.metrics
    assert report["validation_within_landmark_auc"] == pytest.approx(metrics["within_landmark_auc"])
    assert report["validation_within_landmark_auc_ci_low"] == pytest.approx(metrics["within_landmark_auc_ci_lo"])
    assert report["validation_within_landmark_auc_ci_low"] < report["validation_within_landmark_auc"]
    # The status's figures name the low end the same way (they too said validation_within_landmark_auc).
    assert api.client.post("/v1/clients/x/sessions", json=S[0], headers=headers).status_code == 201
    assert api.client.put("/v1/clients/x", json={"status": "dropout"}, headers=headers).status_code == 200
    figures = _monitoring(api, headers)["clinics"][0]["status"]["figures"]
    assert figures["validation_within_landmark_auc_ci_low"] == report["validation_within_landmark_auc_ci_low"]
    assert "validation_within_landmark_auc" not in figures
