"""dropout-risk import-fhir: an NDJSON export or a Bundle file into a clinic's sessions, as POST /fhir/r4 does."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli
from dropout_risk.serving.db import make_engine
from dropout_risk.serving.tables import SessionRecord
from tests.support import fhir
from tests.support.mlflow_store import active_store

runner = CliRunner()
CONFIG = fhir.CODES_TOML


def _sessions(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(SessionRecord))
    engine.dispose()
    return int(count or 0)


def test_import_fhir_reads_ndjson_and_bundles_names_bad_lines_and_is_idempotent(champion, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/api.db"
    monkeypatch.setenv("DROPOUT_RISK_DATABASE_URL", url)
    config = tmp_path / "dropout-risk.toml"
    config.write_text(CONFIG)
    data = fhir.sessions(3, 4, seed=11)
    resources = fhir.resources(data)
    bad = fhir.observation("c0001", "srs", 44.0, "2027-01-01", None)  # SRS is 0-40
    ndjson = tmp_path / "Observation.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in [*resources, bad]) + "\n{not json\n")
    with active_store(champion.store):
        missing = runner.invoke(cli, ["import-fhir", "--clinic", "north", str(ndjson), "--config", str(config)])
        assert missing.exit_code == 1 and "no clinic named 'north'" in missing.output
        assert runner.invoke(cli, ["keys", "create", "--clinic", "north"]).exit_code == 0
        first = runner.invoke(cli, ["import-fhir", "--clinic", "north", str(ndjson), "--config", str(config)])
        again = runner.invoke(cli, ["import-fhir", "--clinic", "north", str(ndjson), "--config", str(config)])
        bundle = tmp_path / "bundle.json"
        bundle.write_text(json.dumps(fhir.bundle(resources, "transaction")))
        whole = runner.invoke(cli, ["import-fhir", "--clinic", "north", str(bundle), "--config", str(config)])
    lines = len(resources)
    assert first.exit_code == 1, first.output
    assert f"line {lines + 1}, Observation.valueQuantity.value: must be within 0-40" in first.output
    assert f"line {lines + 2}, Resource: must be one JSON resource" in first.output
    assert "44" not in first.output and "c0001" not in first.output
    sessions = sum(len(p) for p in data.values())
    assert f"{sessions} session(s) stored, 0 already stored, 2 entry(ies) failed" in first.output
    assert f"0 session(s) stored, {sessions} already stored" in again.output
    assert whole.exit_code == 0 and f"0 session(s) stored, {sessions} already stored" in whole.output
    assert _sessions(url) == sessions
