"""A pytest plugin for mutation runs only: a pinned equivalent mutant of unchanged code runs no test.

An equivalent mutant survives by definition, and a survivor runs every test that reaches its
function, so the few listed equivalents took most of a full run (``features/landmarks.py``: 33
survivors, 300 of the 409 seconds its 374 mutants took). ``scripts/mutation.py`` pins each listed
equivalent to the hash mutmut gives its function's source once it has survived a run of all its
tests. While that hash is unchanged the mutant is the same edit of the same function, and its
process here answers at once with the verdict that run gave (survived), which the score leaves
out anyway. A changed function's equivalents run in full again, as every mutant does with
``scripts/mutation.py --full``.

``MUTATION_PINS`` names the module's pins (JSON: mutant name -> function hash) and
``MUTATION_META`` mutmut's record of the mutated file, which holds the current hashes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def function_of(mutant: str) -> str:
    """The key mutmut hashes a function under: ``x_name`` or ``xǁClassǁname`` (no module, no number)."""
    return mutant.partition("__mutmut_")[0].rpartition(".")[2]


def _load(variable: str, key: str | None = None) -> dict[str, str]:
    """The JSON object a variable names (or its ``key``), or nothing when it cannot be read: then every test runs."""
    try:
        data = json.loads(Path(os.environ[variable]).read_text())
        loaded: dict[str, str] = data[key] if key else data
        return loaded
    except (KeyError, OSError, ValueError):
        return {}


# Read once, when mutmut's own process loads this plugin for its statistics run, before any mutant's process
# is forked: mutmut rewrites its record of the file after every mutant, and a mutant's process reading it then
# read half a file and died, a failure mutmut counts as caught (seen on 2 jobs).
_PINS = _load("MUTATION_PINS")
_HASHES = _load("MUTATION_META", "hash_by_function_name")


def pinned_and_unchanged(mutant: str, pins: dict[str, str], hashes: dict[str, str]) -> bool:
    """Whether ``mutant`` is pinned to the hash its function has now (``scripts/mutation.py`` counts them so)."""
    pinned = pins.get(mutant)
    return pinned is not None and pinned == hashes.get(function_of(mutant))


def _skips_its_tests() -> bool:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant:
        return False  # the clean run, the statistics run, the forced failure: always run
    return pinned_and_unchanged(mutant, _PINS, _HASHES)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Exit 0 (the survivor's verdict) before any collection or fixture, or let pytest run."""
    return int(pytest.ExitCode.OK) if _skips_its_tests() else None
