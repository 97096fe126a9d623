"""Reading clinic files: CSV or Parquet by extension, clear errors that echo no content."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.training.data import DataFileError, load_contract, read_table, write_table

REGISTRY = default_registry()


def test_real_trial_validates_from_csv_and_parquet(trial_dir: Path, tmp_path: Path):
    from_csv = load_contract(trial_dir / "sessions.csv", trial_dir / "episodes.csv", REGISTRY)
    assert from_csv.ok, from_csv.problems
    summary = from_csv.summary(REGISTRY)
    assert (summary["clients"], summary["sessions"], summary["dropout"]) == (172, 780, 43)
    assert summary["instruments"] == ["hamd17", "hama"]

    write_table(from_csv.sessions, tmp_path / "s.parquet")
    write_table(from_csv.episodes, tmp_path / "e.parquet")
    from_parquet = load_contract(tmp_path / "s.parquet", tmp_path / "e.parquet", REGISTRY)
    assert from_parquet.ok, from_parquet.problems
    pd.testing.assert_frame_equal(from_parquet.sessions, from_csv.sessions)


def test_problems_carry_the_users_file_names(trial_dir: Path, tmp_path: Path):
    sessions = tmp_path / "clinic-sessions.csv"
    text = (trial_dir / "sessions.csv").read_text().splitlines()
    text[3] = text[3].replace(",20.0,", ",99.0,", 1)  # row 3: HAM-D above its 0-52 range
    sessions.write_text("\n".join(text) + "\n")
    result = load_contract(sessions, trial_dir / "episodes.csv", REGISTRY)
    assert [str(p) for p in result.problems] == [
        "clinic-sessions.csv, row 3, column hamd17: must be within 0-52 (Hamilton Depression Rating Scale (17 items))"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"client_id,session_number\nA,1\n\xff\xfe,2\n", "line 3 is not valid UTF-8 text"),
        (b"client_id,session_number\nA,1\nB,2,3,4\n", "not a well-formed CSV file"),
    ],
)
def test_unreadable_csv_files(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "sessions.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=message) as caught:
        read_table(path)
    assert "\\xff" not in str(caught.value) and "B" not in str(caught.value).replace(str(tmp_path), "")


def test_unsupported_or_missing_files(tmp_path: Path):
    with pytest.raises(DataFileError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_bytes(b"x")
    with pytest.raises(DataFileError, match="unsupported file type"):
        read_table(tmp_path / "data.xlsx")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        read_table(tmp_path / "broken.parquet")


def test_a_very_long_line_is_a_cell_problem_not_a_crash(trial_dir: Path, tmp_path: Path):
    shutil.copy(trial_dir / "episodes.csv", tmp_path / "episodes.csv")
    lines = (trial_dir / "sessions.csv").read_text().splitlines()
    lines[1] = lines[1].replace("32.0", "3" * 1_000_000, 1)
    (tmp_path / "sessions.csv").write_text("\n".join(lines) + "\n")
    result = load_contract(tmp_path / "sessions.csv", tmp_path / "episodes.csv", REGISTRY)
    assert [(p.row, p.column) for p in result.problems] == [(1, "hamd17")]
