"""Files holding health data are created 0600, their new folders 0700, whatever the umask (issue 12, item 10)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from dropout_risk.serving.db import make_engine, session_factory, transaction
from dropout_risk.serving.export import export_contract
from dropout_risk.serving.keys import create_key
from dropout_risk.serving.migrate import upgrade
from dropout_risk.training.data import write_table
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def common_umask():
    """022, the usual default, under which a plain open() makes a world-readable file."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_sqlite_database_and_its_wal_are_owner_only(tmp_path):
    path = tmp_path / "new" / "dropout_risk.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        create_key(db, "north")
    with engine.connect() as connection:  # keep the WAL open while looking at it
        connection.execute(text("SELECT 1")).all()
        files = [path, *[p for p in path.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]]
        assert len(files) >= 2
        assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
    assert _mode(path.parent) == 0o700
    engine.dispose()


def test_export_files_are_owner_only(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        paths = export_contract(db, tmp_path / "exports" / "today")
    engine.dispose()
    assert {_mode(p) for p in paths.values()} == {0o600}
    assert _mode(tmp_path / "exports") == _mode(tmp_path / "exports" / "today") == 0o700


@pytest.mark.parametrize("name", ["scores.csv", "features.parquet"])
def test_tables_written_by_the_cli_are_owner_only(tmp_path, name):
    """`features` and `score` write through write_table."""
    path = write_table(pd.DataFrame({"client_id": ["a"], "risk": [0.3]}), tmp_path / "out" / name)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700


def test_an_existing_world_readable_output_is_tightened_when_rewritten(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    path = shared / "scores.csv"
    path.write_text("old")
    path.chmod(0o644)
    write_table(pd.DataFrame({"client_id": ["a"]}), path)
    assert _mode(path) == 0o600 and _mode(shared) == 0o755  # the operator's existing folder keeps its mode


def test_simulated_cohorts_are_owner_only(tmp_path):
    paths = write_cohort(simulate_cohort(SimulationConfig(n_clients=20, seed=1)), tmp_path / "cohort")
    assert {_mode(p) for p in paths.values()} == {0o600} and _mode(tmp_path / "cohort") == 0o700
