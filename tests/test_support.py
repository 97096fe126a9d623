"""The suite's own helpers (tests/support/): a copied store is a fresh one, cached cohorts are the simulator's."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from mlflow import MlflowClient
from mlflow.store.db.utils import _get_latest_schema_revision

from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort
from tests.support.cohorts import Cohorts
from tests.support.mlflow_store import MlflowStore
from tests.support.scheduling import FileSeconds, order_for_workers


def _client(store: MlflowStore) -> MlflowClient:
    return MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)


def _revision(store: MlflowStore) -> str:
    with closing(sqlite3.connect(store.uri.removeprefix("sqlite:///"))) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _assert_fresh(client: MlflowClient) -> None:
    experiments = client.search_experiments()
    assert [e.name for e in experiments] == ["Default"]  # what MLflow creates with its schema, nothing more
    assert client.search_runs([e.experiment_id for e in experiments]) == []
    assert client.search_registered_models() == []


def test_a_store_copied_from_the_template_is_fresh_and_its_own(mlflow_template, tmp_path):
    first = mlflow_template.new_store(tmp_path / "first")
    assert first.uri == f"sqlite:///{tmp_path}/first/mlflow.db" and first.artifacts == tmp_path / "first" / "artifacts"
    assert _revision(first) == _get_latest_schema_revision()  # at MLflow's head: nothing left to migrate
    _assert_fresh(_client(first))

    # What one copy records, neither the template nor a later copy sees.
    client = _client(first)
    experiment = client.create_experiment("only-in-first", artifact_location=str(first.artifacts))
    client.create_run(experiment)
    client.create_registered_model("only-in-first")
    assert len(client.search_runs([experiment])) == 1

    second = mlflow_template.new_store(tmp_path / "second", "other.db")
    assert second.uri.endswith("/second/other.db")
    _assert_fresh(_client(second))


def test_cohorts_are_simulated_once_and_handed_out_as_copies(tmp_path):
    cohorts = Cohorts(tmp_path / "cached")
    files = cohorts.files(60, seed=4)
    assert cohorts.files(60, seed=4) == files  # the same files, written once
    assert cohorts.files(60, seed=5)["sessions"] != files["sessions"]

    expected = write_cohort(simulate_cohort(SimulationConfig(n_clients=60, seed=4)), tmp_path / "direct")
    for name, path in expected.items():
        assert files[name].read_bytes() == path.read_bytes(), name
    own = cohorts.write(tmp_path / "own", 60, seed=4)
    assert own["sessions"].parent == tmp_path / "own" and own["sessions"].read_bytes() == files["sessions"].read_bytes()

    changed = cohorts.simulate(60, seed=4)
    changed.sessions["session_number"] = 0  # a test may change its frames ...
    assert (cohorts.simulate(60, seed=4).sessions["session_number"] >= 1).all()  # ... the next one gets them unchanged


class _Item:
    def __init__(self, nodeid: str, *fixtures: str, slow: bool = False) -> None:
        self.nodeid, self.fixturenames, self.slow = nodeid, list(fixtures), slow

    def get_closest_marker(self, name: str) -> object | None:
        return name if name == "slow" and self.slow else None


def _order(*items: _Item, seconds: dict[str, float] | None = None) -> list[str]:
    ordered = [item.nodeid for item in order_for_workers(items, seconds)]
    assert sorted(ordered) == sorted(item.nodeid for item in items)  # nothing lost or repeated
    return ordered


def test_the_longest_champion_file_leads_then_files_that_need_no_trained_model_largest_first():
    ordered = _order(
        _Item("a.py::one", "champion"),
        _Item("b.py::one"),
        _Item("c.py::one", "two_models_trained"),  # needs a trained model: not among the free files
        _Item("d.py::one"),
        _Item("d.py::two"),
        _Item("e.py::one", "champion"),
        _Item("e.py::two"),
        _Item("f.py::one"),
    )
    assert ordered == [
        "e.py::one",
        "e.py::two",
        "d.py::one",
        "d.py::two",
        "b.py::one",
        "f.py::one",
        "a.py::one",
        "c.py::one",
    ]


def test_the_leading_file_keeps_its_tests_in_order_and_a_run_without_the_champion_has_no_lead():
    ordered = _order(_Item("a.py::two", "champion"), _Item("a.py::one", "two_models_trained"), _Item("b.py::one"))
    assert ordered == ["a.py::two", "a.py::one", "b.py::one"]
    assert _order(_Item("a.py::one", "two_models_trained"), _Item("b.py::one")) == ["b.py::one", "a.py::one"]


def test_with_last_runs_seconds_the_longest_files_go_first_and_unrecorded_ones_before_them():
    items = [_Item("a.py::one"), _Item("b.py::one"), _Item("c.py::one"), _Item("c.py::two"), _Item("d.py::one")]
    seconds = {"a.py": 1.0, "b.py": 9.0, "c.py": 3.0}  # d.py is new: no record
    assert _order(*items, seconds=seconds) == [
        "d.py::one", "b.py::one", "c.py::one", "c.py::two", "a.py::one",
    ]  # fmt: skip


def test_file_seconds_add_up_each_files_phases_and_replace_only_the_files_that_ran():
    record = FileSeconds()
    for nodeid, duration in [("a.py::one", 1.0), ("a.py::one", 0.5), ("a.py::two[x]", 2.0), ("b.py::one", 0.25)]:
        record.add(nodeid, duration)
    assert record.merged_into({"a.py": 99.0, "z.py": 4.0}) == {"a.py": 3.5, "b.py": 0.25, "z.py": 4.0}


def test_without_a_record_files_with_a_slow_test_go_first_in_their_group():
    items = [_Item("a.py::one"), _Item("a.py::two"), _Item("b.py::one", slow=True), _Item("c.py::one", "champion")]
    items += [_Item("d.py::one", "champion"), _Item("d.py::two", "champion", slow=True)]
    assert _order(*items) == [
        "d.py::one", "d.py::two", "b.py::one", "a.py::one", "a.py::two", "c.py::one",
    ]  # fmt: skip
