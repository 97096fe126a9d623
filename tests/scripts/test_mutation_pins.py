"""The mutation runs' pinned equivalents (scripts/mutation_pinned_equivalents.py): a pinned mutant of
an unchanged function answers "survived" without running a test; anything else runs its tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
MUTANT = "dropout_risk.features.landmarks.x__labels__mutmut_11"


def _run_as_mutant(folder: Path, mutant: str, pinned: str, record: str) -> subprocess.CompletedProcess[str]:
    """pytest on a file whose one test fails, under the plugin, as a mutant's process; ``record`` is mutmut's."""
    (folder / "test_fails.py").write_text("def test_fails():\n    assert False\n")
    (folder / "pins.json").write_text(json.dumps({MUTANT: pinned}))
    (folder / "landmarks.py.meta").write_text(record)
    # Only the plugin under test: the installed plugins (schemathesis, hypothesis, ...) cost most of a second
    # a process at start and play no part here.
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), MUTANT_UNDER_TEST=mutant, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env |= {"MUTATION_PINS": str(folder / "pins.json"), "MUTATION_META": str(folder / "landmarks.py.meta")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation_pinned_equivalents"]
    return subprocess.run([*command, "test_fails.py"], cwd=folder, env=env, capture_output=True, text=True, check=False)


def _pytest_exit_code(folder: Path, mutant: str, pinned: str, current: str) -> int:
    record = json.dumps({"hash_by_function_name": {"x__labels": current}})
    return _run_as_mutant(folder, mutant, pinned, record).returncode


def test_a_pinned_equivalent_of_an_unchanged_function_runs_no_test(tmp_path: Path) -> None:
    assert _pytest_exit_code(tmp_path, MUTANT, pinned="abc123", current="abc123") == pytest.ExitCode.OK


def test_a_changed_function_runs_its_pinned_mutants_tests(tmp_path: Path) -> None:
    assert _pytest_exit_code(tmp_path, MUTANT, pinned="abc123", current="def456") == pytest.ExitCode.TESTS_FAILED


def test_an_unpinned_mutant_and_the_clean_run_run_their_tests(tmp_path: Path) -> None:
    other = "dropout_risk.features.landmarks.x__labels__mutmut_12"
    assert _pytest_exit_code(tmp_path, other, pinned="abc123", current="abc123") == pytest.ExitCode.TESTS_FAILED
    assert _pytest_exit_code(tmp_path, "", pinned="abc123", current="abc123") == pytest.ExitCode.TESTS_FAILED


def test_an_unreadable_record_runs_the_tests_and_does_not_crash(tmp_path: Path) -> None:
    """mutmut rewrites its record after every mutant: a half-written one must not read as a caught mutant."""
    done = _run_as_mutant(tmp_path, MUTANT, pinned="abc123", record='{"hash_by_function_name": {"x__lab')
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    assert "1 failed" in done.stdout  # the test ran: a crash also exits 1, and mutmut counts either as caught
