"""A pytest plugin for mutation runs only: named fixtures are built once per process, not once per mutant.

mutmut (fork isolation) runs the clean test run in its own process, then forks a child per
mutant, and each child starts a fresh pytest session: every session or module fixture is built
again, and for the model and serving tests that (simulating a clinic, fitting six models,
training a champion) is most of a mutant's time. With this plugin the fixtures named in
``MUTATION_CACHED_FIXTURES`` keep, in a process-wide dict, the value the clean run built, and
the forked children inherit it.

Only fixtures that return a value (not generators: their teardown would not run again) and whose
value the module under mutation cannot change may be named: the cached value is then the one a
mutant's own session would build, unless the mutant breaks the building itself, which the
module's own tests see. Caching never makes a mutant look caught.
``scripts/mutation.py`` names them per module and copies this file into the staging tree.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from _pytest.fixtures import SubRequest

CACHED = frozenset(name for name in os.environ.get("MUTATION_CACHED_FIXTURES", "").split(",") if name)
_VALUES: dict[tuple[str, str, str], Any] = {}


def _key(fixturedef: pytest.FixtureDef[Any], request: SubRequest) -> tuple[str, str, str]:
    param = getattr(request, "param", None)
    return (fixturedef.baseid, fixturedef.argname, repr(param))


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: SubRequest) -> Any:
    """The value the clean run built, if there is one (the hook's first non-None result wins)."""
    key = _key(fixturedef, request)
    if fixturedef.argname not in CACHED or key not in _VALUES:
        return None
    value = _VALUES[key]
    fixturedef.cached_result = (value, fixturedef.cache_key(request), None)  # as pytest's own setup leaves it
    return value


class _Keep:
    """Keeps each named fixture's value once built (a class, so the hook name can be reused)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: SubRequest) -> Any:
        value = yield
        if fixturedef.argname in CACHED:
            _VALUES.setdefault(_key(fixturedef, request), value)
        return value


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Keep(), "mutation-fixture-cache-keep")
