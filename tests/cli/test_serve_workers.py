"""`dropout-risk serve --workers N`: what it refuses at start, and what it hands uvicorn (issue 17).

The worker processes themselves run in tests/serving/test_scale_out.py.
"""

from __future__ import annotations

import os

import pytest
import uvicorn
from typer.testing import CliRunner
from uvicorn.importer import import_from_string

from dropout_risk.cli.main import app as cli
from dropout_risk.serving import app as app_module

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/dropout_risk"


@pytest.fixture
def runs(monkeypatch, tmp_path) -> list[tuple[object, dict]]:
    """uvicorn.run's arguments, recorded instead of serving; no settings file, no dashboard secret."""
    calls: list[tuple[object, dict]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    monkeypatch.setattr(app_module, "create_app", lambda _settings: "the app")
    for name in ("DROPOUT_RISK_UI_SECRET", "DROPOUT_RISK_CONFIG", "DROPOUT_RISK_DATABASE_URL"):
        monkeypatch.setenv(name, "")  # recorded, so that what serve sets is undone after the test
        monkeypatch.delenv(name)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):  # restored after: serve sets them
        monkeypatch.delenv(name, raising=False)
    return calls


def test_several_workers_on_sqlite_are_refused_naming_the_setting(runs, monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_UI_SECRET", "s" * 32)
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers 2 needs PostgreSQL" in result.output and "DROPOUT_RISK_DATABASE_URL" in result.output
    assert runs == []


def test_several_workers_without_a_shared_dashboard_secret_are_refused(runs, monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", POSTGRES)
    result = CliRunner().invoke(cli, ["serve", "--workers", "3"])
    assert result.exit_code == 1
    assert "--workers 3 needs DROPOUT_RISK_UI_SECRET" in result.output
    assert runs == []


def test_one_worker_on_sqlite_serves_the_app_itself(runs):
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    [(app, options)] = runs
    assert app == "the app" and "workers" not in options


def test_several_workers_on_postgresql_hand_uvicorn_the_worker_factory(runs, monkeypatch, tmp_path):
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", POSTGRES)
    monkeypatch.setenv("DROPOUT_RISK_UI_SECRET", "s" * 32)
    config = tmp_path / "serve.toml"
    config.write_text("[serving]\nmax_concurrency = 17\n")
    result = CliRunner().invoke(cli, ["serve", "--workers", "4", "--config", str(config)])
    assert result.exit_code == 0, result.output
    [(app, options)] = runs
    assert app == app_module.WORKER_APP and options["factory"] is True and options["workers"] == 4
    assert options["limit_concurrency"] == 17 and options["access_log"] is False  # the same options per worker
    # Each worker reads the same settings file: serve points the workers' environment at it.
    assert os.environ["DROPOUT_RISK_CONFIG"] == str(config.resolve())
    assert import_from_string(app_module.WORKER_APP) is app_module.worker_app
