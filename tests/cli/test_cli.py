"""The dropout-risk command end to end: real files in, exit codes and output checked."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dropout_risk.cli.main import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_validate_clean_trial_data(trial_dir: Path):
    result = _run("validate", "--sessions", trial_dir / "sessions.csv", "--episodes", trial_dir / "episodes.csv")
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert re.search(r"clients\s+172", result.output)
    assert re.search(r"sessions\s+780", result.output)
    assert "hamd17, hama" in result.output
    assert "25.0% of ended episodes" in result.output


def test_validate_lists_every_problem_without_ids_or_values(trial_dir: Path, tmp_path: Path):
    sessions = pd.read_csv(trial_dir / "sessions.csv", dtype=str, keep_default_na=False)
    sessions.loc[0, "hamd17"] = "61.5"  # out of range
    sessions.loc[1, "session_date"] = "1999-01-01"  # goes back
    sessions.loc[2, "hama"] = "lots"  # not a number
    sessions.to_csv(tmp_path / "s.csv", index=False)
    episodes = pd.read_csv(trial_dir / "episodes.csv", dtype=str)
    episodes.loc[5, "status"] = "left"
    episodes.to_csv(tmp_path / "e.csv", index=False)

    result = _run("validate", "--sessions", tmp_path / "s.csv", "--episodes", tmp_path / "e.csv")
    assert result.exit_code == 1
    output = result.output
    assert "4 problem(s) found" in output
    assert "s.csv, row 1, column hamd17: must be within 0-52" in output
    assert "s.csv, row 2, column session_date: date is earlier than this client's previous session" in output
    assert "s.csv, row 3, column hama: must be a number" in output
    assert "e.csv, row 6, column status: must be one of dropout, completed, ongoing" in output
    for secret in ("61.5", "1999", "lots", "left", *sessions["client_id"].unique()[:10]):
        assert secret not in output


def test_unreadable_file_and_missing_config_exit_1(tmp_path: Path, trial_dir: Path):
    (tmp_path / "s.csv").write_bytes(b"")
    result = _run("validate", "--sessions", tmp_path / "s.csv", "--episodes", trial_dir / "episodes.csv")
    assert result.exit_code == 1
    assert "file is empty" in result.output
    result = _run(
        "validate",
        "--sessions",
        trial_dir / "sessions.csv",
        "--episodes",
        trial_dir / "episodes.csv",
        "--config",
        tmp_path / "absent.toml",
    )
    assert result.exit_code == 1
    assert "config file" in result.output and "does not exist" in result.output


def test_config_declares_an_instrument_without_code(tmp_path: Path):
    sessions = pd.DataFrame(
        {
            "client_id": ["a", "a"],
            "session_number": [1, 2],
            "session_date": ["2024-01-01", "2024-01-08"],
            "ecbi": [150, 260],
        }
    )
    sessions.to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"client_id": ["a"], "status": ["completed"]}).to_csv(tmp_path / "e.csv", index=False)
    args = ("validate", "--sessions", tmp_path / "s.csv", "--episodes", tmp_path / "e.csv")
    assert "no instrument column found" in _run(*args).output

    (tmp_path / "c.toml").write_text(
        '[[instruments]]\nkey = "ecbi"\nname = "Eyberg Child Behavior Inventory"\nmin = 36\nmax = 252\n'
        'higher_is_better = false\nrole = "outcome"\ncutoff = 131\nreliable_change = 23\n'
    )
    result = _run(*args, "--config", tmp_path / "c.toml")
    assert result.exit_code == 1
    assert "s.csv, row 2, column ecbi: must be within 36-252 (Eyberg Child Behavior Inventory)" in result.output


def test_invalid_config_names_the_field(tmp_path: Path, trial_dir: Path):
    (tmp_path / "c.toml").write_text("[features]\nmax_landmark = 0\n")
    result = _run(
        "validate",
        "--sessions",
        trial_dir / "sessions.csv",
        "--episodes",
        trial_dir / "episodes.csv",
        "--config",
        tmp_path / "c.toml",
    )
    assert result.exit_code == 1
    assert "features.max_landmark" in result.output


def test_simulate_validate_features_chain(tmp_path: Path):
    out = tmp_path / "sim"
    result = _run(
        "simulate",
        "--clients",
        "300",
        "--seed",
        "3",
        "--out",
        out,
        "--alliance",
        "wai_sr",
        "--outcome",
        "phq9",
        "--clinics",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"sessions.csv", "episodes.csv", "truth.csv"}
    sessions, episodes = out / "sessions.csv", out / "episodes.csv"
    assert _run("validate", "--sessions", sessions, "--episodes", episodes).exit_code == 0

    result = _run("features", "--sessions", sessions, "--episodes", episodes, "--out", tmp_path / "f.parquet")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "f.parquet")
    raw = pd.read_csv(sessions)
    assert len(table) == int((raw["session_number"] <= 8).sum())
    assert {"phq9_change_intake", "wai_sr_min", "missed_total", "age"} <= set(table.columns)
    assert table["landmark"].between(1, 8).all()


@pytest.mark.parametrize("bad", [["--clients", "0"], ["--outcome", "bdi"], ["--dropout-rate", "1.5"]])
def test_simulate_rejects_bad_options(tmp_path: Path, bad: list[str]):
    result = _run("simulate", "--out", tmp_path, *(["--clients", "10"] if bad[0] != "--clients" else []), *bad)
    assert result.exit_code != 0
    assert not (tmp_path / "sessions.csv").exists()


def test_simulate_no_signal_writes_a_truth_that_depends_on_the_session_only(tmp_path: Path):
    out = tmp_path / "sim"
    result = _run("simulate", "--clients", "500", "--seed", "2", "--out", out, "--no-signal")
    assert result.exit_code == 0, result.output
    assert "only the session number affects dropout" in result.output
    truth = pd.read_csv(out / "truth.csv")
    assert truth.groupby("session_number")["true_risk"].nunique().max() == 1
    assert truth.groupby("session_number")["true_risk"].first().loc[1:5].is_monotonic_decreasing

    both = _run("simulate", "--clients", "50", "--out", tmp_path / "x", "--no-signal", "--alliance-effect", "1")
    assert both.exit_code == 1 and "--no-signal" in both.output
    assert not (tmp_path / "x").exists()
