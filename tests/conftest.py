"""Fixtures shared across the suite: the real trial data, MLflow stores, PostgreSQL, cohorts and a champion.

The helpers behind them live in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.postgres import fresh_postgres_database
from tests.support.scheduling import CACHE_KEY, FileSeconds, order_for_workers
from tests.support.workers import exclusive, run_directory

if TYPE_CHECKING:
    from tests.support.cohorts import Cohorts
    from tests.support.mlflow_store import MlflowStore, StoreTemplate
    from tests.support.training import Champion, TwoModels

# The helpers that import MLflow, scikit-learn and the training code are imported inside the fixtures
# that use them: pytest-xdist's controller loads this file before it starts the workers, and never
# runs a fixture, so importing them here delayed every worker's start by about 4 s.

TRIAL_DATA = Path(__file__).resolve().parent / "data" / "antidepressant-trial"


FILE_SECONDS = FileSeconds()


@pytest.hookimpl(trylast=True)  # after -m has deselected: a deselected file must not be chosen to go first
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The file that trains the champion first, then files that need no trained model, the longest first
    (tests/support/scheduling.py)."""
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    items[:] = order_for_workers(items, cache.get(CACHE_KEY, None) if cache else None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    FILE_SECONDS.add(report.nodeid, report.duration)  # under xdist the controller gets every worker's reports


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is not None and not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        cache.set(CACHE_KEY, FILE_SECONDS.merged_into(cache.get(CACHE_KEY, {})))


@pytest.fixture(scope="session")
def trial_dir() -> Path:
    """The real antidepressant-trial data, shipped in tests/data (its README gives the source and licence)."""
    missing = [name for name in ("sessions.csv", "episodes.csv") if not (TRIAL_DATA / name).is_file()]
    if missing:
        pytest.fail(f"the trial data ships with the repository, but {', '.join(missing)} is missing from {TRIAL_DATA}")
    return TRIAL_DATA


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> StoreTemplate:
    """MLflow's schema, migrated once per run (whatever the xdist workers); fresh stores are copies of it."""
    from tests.support.mlflow_store import StoreTemplate

    directory = run_directory(tmp_path_factory) / "mlflow-template"
    with exclusive(directory.with_suffix(".lock")):
        return StoreTemplate(directory)  # the first worker migrates; the others find it done


@pytest.fixture(scope="module")
def mlflow_store(mlflow_template, tmp_path_factory) -> Iterator[MlflowStore]:
    """A fresh SQLite-backed store per test module, active for that module."""
    from tests.support.mlflow_store import active_store

    with active_store(mlflow_template.new_store(tmp_path_factory.mktemp("mlflow"))) as store:
        yield store


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for the session (psycopg 3 URL)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory) -> Cohorts:
    """Simulated cohorts by parameters, each simulated and written once per session (tests/support/cohorts.py)."""
    from tests.support.cohorts import Cohorts

    return Cohorts(tmp_path_factory.mktemp("cohorts"))


@pytest.fixture(scope="session")
def champion(mlflow_template, cohorts, tmp_path_factory) -> Champion:
    """One trained, promoted model in a store of its own, for the whole run (training takes seconds).

    The first xdist worker that needs it trains it; the others read the same store. Its store is
    not left active: a test or fixture that uses it activates it (``active_store``). Nothing
    writes to that store after training, so the champion is version 1.
    """
    from tests.support.training import Champion, train_champion

    root = run_directory(tmp_path_factory) / "champion"
    with exclusive(root.with_suffix(".lock")):
        record = root / "champion.json"
        if record.is_file():
            return Champion.load(record)
        store = mlflow_template.new_store(root)
        trained = train_champion(store, cohorts.write(root / "data", 1500, seed=17))
        trained.save(record)
        return trained


@pytest.fixture(scope="session")
def two_models_trained(mlflow_template, cohorts, tmp_path_factory) -> TwoModels:
    """Two quick models, the first champion, trained once per run (whatever the xdist workers); use ``two_models``."""
    from tests.support.training import TwoModels, train_two_models

    root = run_directory(tmp_path_factory) / "two-models"
    with exclusive(root.with_suffix(".lock")):
        record = root / "two-models.json"
        if record.is_file():
            return TwoModels.load(record)
        trained = train_two_models(mlflow_template.new_store(root), cohorts.files(600, seed=29))
        trained.save(record)
        return trained


@pytest.fixture(scope="module")
def two_models(two_models_trained, tmp_path_factory) -> TwoModels:
    """The two models in a registry of the module's own: it may promote the second (hot swap, scale-out)."""
    return two_models_trained.copy_to(tmp_path_factory.mktemp("two-models"))
