"""Keys from the command line, and exporting what clinics recorded as the training contract."""

from __future__ import annotations

import threading

import pandas as pd
from sqlalchemy import select, update
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.cli.serve import export as export_command
from dropout_risk.features.contract import validate_contract
from dropout_risk.features.instruments import default_registry
from dropout_risk.serving import export as export_module
from dropout_risk.serving.db import transaction
from dropout_risk.serving.export import export_clients, export_contract
from dropout_risk.serving.tables import Client, Clinic

runner = CliRunner()
S = [
    {
        "session_number": n,
        "session_date": f"2025-04-0{n}",
        "scores": {"ors": 10.0 + n, "srs": 35.0},
        "missed_since_last": n % 2,
    }
    for n in range(1, 4)
]


def test_keys_create_list_revoke(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", f"sqlite:///{tmp_path}/keys.db")
    created = runner.invoke(cli, ["keys", "create", "--clinic", "north"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("drk_") and len(key) > 40
    listed = runner.invoke(cli, ["keys", "list"])
    assert key[:12] in listed.output and "north" in listed.output and key not in listed.output
    assert runner.invoke(cli, ["keys", "revoke", key[:12]]).exit_code == 0
    again = runner.invoke(cli, ["keys", "revoke", key[:12]])
    assert again.exit_code == 1 and "no active key" in again.output
    assert runner.invoke(cli, ["keys", "revoke", "drk_"]).exit_code == 1


def test_export_writes_the_training_contract(api, tmp_path):
    name, headers = api.add_clinic()
    for client in ("x", "y"):
        for session in S:
            assert api.client.post(f"/v1/clients/{client}/sessions", json=session, headers=headers).status_code == 201
    api.client.put("/v1/clients/x", json={"status": "dropout", "age": 31, "gender": "F"}, headers=headers)
    api.client.put("/v1/clients/no-sessions", json={"age": 50}, headers=headers)
    with transaction(api.app.state.sessions) as db:
        paths = export_contract(db, tmp_path, clinic=name)
    sessions, episodes = pd.read_csv(paths["sessions"], dtype=str), pd.read_csv(paths["episodes"], dtype=str)
    assert list(sessions.columns[:4]) == ["client_id", "session_number", "session_date", "missed_since_last"]
    assert len(sessions) == 6 and set(episodes["client_id"]) == {"x", "y"}
    result = validate_contract(sessions, episodes, default_registry())
    assert result.ok, result.problems
    x = episodes.set_index("client_id").loc["x"]
    assert (x["status"], float(x["age"]), x["gender"]) == ("dropout", 31.0, "F")
    assert result.sessions["ors"].tolist() == [11.0, 12.0, 13.0] * 2


def test_export_neutralises_spreadsheet_formulas_in_csv(api, tmp_path):
    """A cell starting with = + - @ runs as a formula when a clinic opens the CSV in a spreadsheet (OWASP)."""
    name, headers = api.add_clinic()
    for client in ("@ci", "safe"):
        assert api.client.post(f"/v1/clients/{client}/sessions", json=S[0], headers=headers).status_code == 201
    update = {
        "gender": "=HYPERLINK(0)",
        "therapist_id": "+SUM(1)",
        "covariates": {"note": "@cmd", "code": "-2+3", "plain": "ok", "level": -3},
    }
    assert api.client.put("/v1/clients/@ci", json=update, headers=headers).status_code == 200
    with transaction(api.app.state.sessions) as db:
        paths = export_contract(db, tmp_path, clinic=name)
    episodes = pd.read_csv(paths["episodes"], dtype=str, keep_default_na=False).set_index("client_id")
    sessions = pd.read_csv(paths["sessions"], dtype=str)
    row = episodes.loc["'@ci"]
    assert (row["gender"], row["therapist_id"], row["note"], row["code"]) == (
        "'=HYPERLINK(0)",
        "'+SUM(1)",
        "'@cmd",
        "'-2+3",
    )
    assert (row["plain"], float(row["level"])) == ("ok", -3.0)  # text that is safe, and numbers, stay as they are
    assert set(sessions["client_id"]) == {"'@ci", "safe"}  # the same id in both files: they still join
    raw = paths["episodes"].read_text() + paths["sessions"].read_text()
    assert not any(cell.startswith(("=", "+", "@")) for line in raw.splitlines() for cell in line.split(","))


def _store_covariates(api, clinic: str, client: str, covariates: dict) -> None:
    """Write covariates straight into the table, as rows stored before the rules were enforced."""
    with transaction(api.app.state.sessions) as db:
        clinic_pk = db.scalar(select(Clinic.id).where(Clinic.name == clinic))
        db.execute(
            update(Client)
            .where(Client.clinic_id == clinic_pk, Client.external_id == client)
            .values(covariates=covariates)
        )


def test_export_skips_stored_rows_that_break_the_rules_and_counts_them(api, tmp_path, monkeypatch):
    """A lone surrogate stored in one client failed every clinic's export; client_id overwrote the column."""
    name, headers = api.add_clinic()
    bad = {"reserved": {"client_id": "other", "status": "dropout"}, "absurd": {"level": -1e308}, "age": {"age": -4}}
    if api.backend == "sqlite":  # PostgreSQL's JSON refuses a lone surrogate: it cannot be stored there
        bad["surrogate"] = {"note": "\udfff"}
    for client in ("good", *bad):
        assert api.client.post(f"/v1/clients/{client}/sessions", json=S[0], headers=headers).status_code == 201
    for client, covariates in bad.items():
        _store_covariates(api, name, client, covariates)
    with transaction(api.app.state.sessions) as db:
        exported = export_clients(db, tmp_path, clinic=name)
    assert exported.skipped == len(bad)
    sessions = pd.read_csv(exported.paths["sessions"], dtype=str)
    episodes = pd.read_csv(exported.paths["episodes"], dtype=str)
    assert set(sessions["client_id"]) == set(episodes["client_id"]) == {"good"}
    assert validate_contract(sessions, episodes, default_registry()).ok
    if api.backend == "sqlite":  # the command, over every clinic: it finishes and says how many it left out
        monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", str(api.app.state.engine.url))
        result = runner.invoke(cli, ["export", "--out", str(tmp_path / "all")])
        assert result.exit_code == 0, result.output
        assert f"skipped {len(bad)} client(s)" in " ".join(result.output.split())


def test_api_writes_succeed_while_an_export_runs(api, tmp_path, monkeypatch):
    """On SQLite the export held the write lock for its whole run: API writes waited, then "database is locked"."""
    name, headers = api.add_clinic()
    for client in ("e1", "e2"):
        for session in S:
            assert api.client.post(f"/v1/clients/{client}/sessions", json=session, headers=headers).status_code == 201
    inside, release = threading.Event(), threading.Event()
    real = export_module.neutralise_formulas

    def paused(frame: pd.DataFrame) -> pd.DataFrame:  # the export has read everything, in its transaction
        inside.set()
        release.wait(60)
        return real(frame)

    monkeypatch.setattr(export_module, "neutralise_formulas", paused)
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", api.app.state.engine.url.render_as_string(hide_password=False))
    exporting = threading.Thread(target=export_command, kwargs={"out": tmp_path, "clinic": name, "config": None})
    exporting.start()
    try:
        assert inside.wait(60)
        statuses: list[int] = []

        def write() -> None:
            for n in range(4, 10):
                session = {**S[0], "session_number": n, "session_date": f"2025-04-{n:02d}"}
                statuses.append(api.client.post("/v1/clients/e1/sessions", json=session, headers=headers).status_code)
            statuses.append(api.client.put("/v1/clients/e3", json={"age": 40}, headers=headers).status_code)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(10)  # well under SQLite's 30 s busy timeout: the writes must not be waiting for the export
        assert not writer.is_alive() and statuses == [201] * 6 + [200]
    finally:
        release.set()
        exporting.join(60)
    sessions = pd.read_csv(tmp_path / "sessions.csv", dtype=str)
    assert len(sessions) == 6  # one snapshot: the sessions written during the export are not in it
