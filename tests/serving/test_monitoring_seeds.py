"""The monitor's status over ten clinics at a time, at the service function (no HTTP), on SQLite.

Issue 13 asks for at most 1 false ``recalibrate`` in 10 seeds for a clinic replaying the training
distribution. Ten clinics of 250 clients each are ten blocks of one population simulated like the
champion's training data (25% dropout); ten more are blocks of a shifted population (40% dropout,
outcome scores half an SD more severe). Their risks are the champion's batch-scored ones written
straight into the service's tables (tests/support/replay.py ``store_scored``); tests/serving/
test_monitoring_api.py does the same through the API for one clinic of each kind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.serving.db import make_engine, session_factory
from dropout_risk.serving.migrate import upgrade
from dropout_risk.serving.model_holder import ModelHolder
from dropout_risk.serving.monitoring.report import Monitoring
from dropout_risk.serving.monitoring.service import ServedModelFacts, monitor
from dropout_risk.serving.settings import MonitoringConfig
from tests.support.mlflow_store import active_store
from tests.support.replay import clinic_sample, store_scored
from tests.support.training import Champion

CLINICS, PER_CLINIC = 10, 250
SHIFTED = {"dropout_rate": 0.40, "intake_shift": 0.5}


@dataclass(frozen=True)
class Deployment:
    report: Monitoring
    database_url: str
    champion: Champion


@pytest.fixture(scope="module")
def deployment(champion, cohorts, tmp_path_factory) -> Iterator[Deployment]:
    with active_store(champion.store):
        holder = ModelHolder("models:/dropout-risk@champion")
        holder.refresh()
    loaded = holder.current
    assert loaded is not None and loaded.profile is not None
    url = f"sqlite:///{tmp_path_factory.mktemp('seeds')}/monitor.db"
    engine = make_engine(url)
    upgrade(engine)
    like = cohorts.simulate(CLINICS * PER_CLINIC, seed=18)
    shifted = cohorts.simulate(CLINICS * PER_CLINIC, seed=32, **SHIFTED)
    with session_factory(engine)() as db:
        for i in range(CLINICS):
            store_scored(db, f"like-{i}", clinic_sample(like, i, PER_CLINIC), loaded.compiled, loaded.version)
            store_scored(db, f"shifted-{i}", clinic_sample(shifted, i, PER_CLINIC), loaded.compiled, loaded.version)
        db.commit()
        report = monitor(db, ServedModelFacts.of(loaded), MonitoringConfig())
    engine.dispose()
    yield Deployment(report, url, champion)


def _statuses(deployment: Deployment, kind: str) -> Counter:
    return Counter(c.status.status for c in deployment.report.clinics if c.clinic.startswith(kind))


def test_clinics_like_the_training_data_are_at_most_once_recalibrate_in_ten(deployment):
    statuses = _statuses(deployment, "like-")
    print("like clinics:", dict(statuses))
    assert statuses["recalibrate"] <= 1
    assert statuses["ok"] >= 8


def test_shifted_clinics_are_recalibrate_and_their_intake_drifted(deployment):
    statuses = _statuses(deployment, "shifted-")
    print("shifted clinics:", dict(statuses))
    assert statuses["recalibrate"] >= 7
    shifted = [c for c in deployment.report.clinics if c.clinic.startswith("shifted-")]
    intake = [any(d.what == "ors intake" and d.drifted for d in c.drift) for c in shifted]
    assert sum(intake) >= 8
    for clinic in shifted:
        if clinic.status.status == "recalibrate":
            assert clinic.current is not None and clinic.current.oe_ci[0] is not None
            assert clinic.current.oe_ci[0] > 1 and clinic.current.episodes >= deployment.report.min_ended


def test_the_command_prints_and_writes_the_same_report(deployment, tmp_path, monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", deployment.database_url)
    files = {name: tmp_path / name for name in ("report.json", "report.html", "calibration.png")}
    with active_store(deployment.champion.store):
        result = CliRunner().invoke(
            cli,
            ["monitor", "--clinic", "shifted-0", "--since", "2020-01-01"]
            + ["--report", str(files["report.json"]), "--html", str(files["report.html"])]
            + ["--plot", str(files["calibration.png"])],
        )
    assert result.exit_code == 0, result.output
    written = json.loads(files["report.json"].read_text())
    expected = next(c for c in deployment.report.clinics if c.clinic == "shifted-0")
    assert [c["clinic"] for c in written["clinics"]] == ["shifted-0"] and written["service"] is None
    assert written["clinics"][0]["status"]["status"] == expected.status.status
    assert written["clinics"][0]["current"]["oe"] == pytest.approx(expected.current.oe)
    assert f"shifted-0: {expected.status.status}" in " ".join(result.output.split())
    assert files["calibration.png"].read_bytes().startswith(b"\x89PNG")
    page = files["report.html"].read_text()
    assert "shifted-0" in page and "data:image/png;base64," in page
    unknown = CliRunner().invoke(cli, ["monitor", "--clinic", "no-such-clinic"])
    assert unknown.exit_code != 0 and "--clinic" in unknown.output
