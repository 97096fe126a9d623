"""Mutation testing (mutmut 3) of the modules where a silent bug costs most, each against its own tests.

    python scripts/mutation.py                        # every module below
    python scripts/mutation.py models/calibration.py  # one (or a few)

mutmut copies the code it mutates into ``mutants/`` and puts that folder first on
``sys.path``; our folders are installed under ``dropout_risk.*`` by a package-dir
mapping it cannot follow. So each module gets a staging tree under ``.mutation/``
laid out as the installed package (``dropout_risk/models/...``, ``tests/``, and
pyproject.toml with a ``[tool.mutmut]`` table naming the one module to mutate and
the tests to run), and mutmut runs there. A mutant is caught when a test fails
(killed) or hangs (timeout); the score is caught / (all mutants - equivalent ones).
Not part of CI: run it after changing one of these modules, and record the score
in docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# scripts/ is on sys.path: this script is run as a file
from mutation_equivalents import EQUIVALENT
from mutation_pinned_equivalents import function_of, pinned_and_unchanged

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / ".mutation"
PACKAGES = ("cli", "features", "models", "serving", "training")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
SQLITE_ONLY = ["-k", "not postgresql"]  # the PostgreSQL twins double the time and test the same code
# Simulated cohorts, MLflow's migrated schema and the trained champion: nothing in features/ (but the simulation's
# instruments), serving/ or the scorer's own code changes them (scripts/mutation_fixture_cache.py).
SERVING_FIXTURES = ("cohorts", "mlflow_template", "champion")


@dataclass(frozen=True)
class Target:
    tests: tuple[str, ...]
    pytest_args: tuple[str, ...] = ()
    # Fixtures built once by the clean run and inherited by every mutant's process
    # (scripts/mutation_fixture_cache.py): only ones whose building never runs the mutated module.
    cached: tuple[str, ...] = ()


# Each module and the tests that exercise it: mutmut runs, per mutant, those of them that reach the mutated function.
# The landmark feature code is three modules (the table's layout, the per-client blocks, the score features), all
# exercised by the same tests.
LANDMARK_TESTS = Target(
    (
        "tests/features/test_landmarks.py",
        "tests/features/test_landmarks_properties.py",
        "tests/features/test_leakage.py",
        "tests/features/test_client_features.py",
        "tests/features/test_score_features_edges.py",
        "tests/features/test_client_blocks.py",
        "tests/features/test_landmarks_edges.py",
    ),
    cached=("cohorts",),
)
TARGETS: dict[str, Target] = {
    "features/landmarks.py": LANDMARK_TESTS,
    "features/client_blocks.py": LANDMARK_TESTS,
    "features/score_features.py": LANDMARK_TESTS,
    "features/contract.py": Target(
        ("tests/features/test_contract.py", "tests/features/test_contract_rules.py", "tests/training/test_data.py"),
        cached=("cohorts",),
    ),
    "features/trajectories.py": Target(
        ("tests/features/test_trajectories.py", "tests/features/test_leakage.py"), cached=("cohorts",)
    ),
    "models/calibration.py": Target(
        ("tests/models/test_calibration.py", "tests/models/test_calibration_fit.py", "tests/models/test_packaged.py")
    ),
    "models/compiled.py": Target(
        ("tests/models/test_compiled.py", "tests/serving/test_matches_batch.py"),
        tuple(SQLITE_ONLY),
        # The fitted models and the champion's store are the same whatever the scorer does (training only
        # checks its artifact with it; tests/models/test_compiled.py sees a scorer that fails that check).
        ("cohorts", "clinic", "models", "mlflow_template", "champion"),
    ),
    "serving/scoring.py": Target(
        (
            "tests/serving/test_matches_batch.py",
            "tests/serving/test_api.py",
            "tests/serving/test_risk_bands.py",
            # The factors, flags and changes of every held-out session, on two fitted models (their fitting
            # never runs the scorer's serving code: cached), and two clients read end to end.
            "tests/serving/test_reasons.py",
            "tests/serving/test_issue16_histories.py",
            # The risk names the clinic's recalibration it applied (score_history's "recalibration").
            "tests/serving/test_monitoring_api.py::test_a_recalibration_moves_its_clinics_risks_only_and_says_so",
        ),
        tuple(SQLITE_ONLY),
        (*SERVING_FIXTURES, "clinic", "split", "compiled"),
    ),
    "serving/store.py": Target(
        (
            "tests/serving/test_api.py",
            "tests/serving/test_payload_hash.py",
            "tests/serving/test_stored_risk.py",
            "tests/serving/test_caseload_nulls.py",
            "tests/serving/test_store.py",
            # served_risk: the risk a FHIR RiskAssessment read returns, the clinic's own only.
            "tests/serving/test_fhir_risk_assessment.py",
        ),
        # SQLite alone: the PostgreSQL twins double the time; the PostgreSQL-only lines (the upsert's dialect,
        # FOR UPDATE) are checked against those twins by hand (docs/testing.md).
        tuple(SQLITE_ONLY),
        SERVING_FIXTURES,
    ),
    "serving/deps.py": Target(
        (
            "tests/serving/test_security.py",
            "tests/serving/test_admin_without_key.py",
            "tests/serving/test_isolation.py",
        ),
        tuple(SQLITE_ONLY),
        SERVING_FIXTURES,
    ),
    "serving/keys.py": Target(
        ("tests/serving/test_security.py", "tests/serving/test_isolation.py"), tuple(SQLITE_ONLY), SERVING_FIXTURES
    ),
    "training/splits.py": Target(("tests/training/test_splits.py",), cached=("cohorts",)),
    # The gate's models are trained once by the clean run (training never runs the gate; the suite's champion
    # was promoted by force, so a mutant breaking that is seen by the forced rollback in the tests): each
    # mutant's tests only copy a registry and run the gate (small_data: a first model trained in small-data mode).
    "training/jobs/promote.py": Target(
        ("tests/training/test_gate.py",),
        cached=("cohorts", "mlflow_template", "champion", "challenged", "held_out", "small_data"),
    ),
    "training/evaluation/bootstrap.py": Target(("tests/training/test_bootstrap.py",), cached=("cohorts",)),
}

# Surviving mutants that cannot change behaviour, with their reasons: scripts/mutation_equivalents.py.


# pytest plugins of these runs only (scripts/), copied into the staging tree's tests/support/.
PLUGINS = ("mutation_fixture_cache", "mutation_pinned_equivalents")
# The plugins, and no pruning of old pytest temporary folders: a cached fixture's files (a champion's
# MLflow store) stay in the clean run's folder, which every mutant's session would otherwise prune.
PLUGIN_ARGS = (
    *(arg for name in PLUGINS for arg in ("-p", f"tests.support.{name}")),
    "-o",
    "tmp_path_retention_count=1000000",
)
# Each listed equivalent's function hash when it last survived all its tests (scripts/mutation_pinned_equivalents.py).
PINS = ROOT / "scripts" / "mutation_pins.json"


def stage(module: str, target: Target) -> Path:
    """A fresh tree laid out as the installed package, configured to mutate ``module`` only."""
    where = STAGING / module.removesuffix(".py").replace("/", "__")
    shutil.rmtree(where, ignore_errors=True)
    package = where / "dropout_risk"
    package.mkdir(parents=True)
    shutil.copy2(ROOT / "dropout_risk" / "__init__.py", package / "__init__.py")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, package / name, ignore=IGNORED)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=IGNORED)
    for name in PLUGINS:
        shutil.copy2(ROOT / "scripts" / f"{name}.py", where / "tests" / "support" / f"{name}.py")
    settings = {
        "source_paths": ["dropout_risk"],
        "only_mutate": [f"dropout_risk/{module}"],
        "pytest_add_cli_args_test_selection": list(target.tests),
        "pytest_add_cli_args": ["-q", "-p", "no:cacheprovider", *PLUGIN_ARGS, *target.pytest_args],
        "use_git_change_detection": False,
    }
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    pyproject = (ROOT / "pyproject.toml").read_text()
    (where / "pyproject.toml").write_text(f"{pyproject}\n[tool.mutmut]\n{table}\n")
    return where


MUTMUT = Path(sys.executable).with_name("mutmut")


def mutmut(where: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | (extra_env or {})
    # pytest's temporary folders in the staging tree, not the machine's shared pytest-of-USER folder: any other
    # pytest run there prunes all but its newest three, the clean run's among them, and a cached fixture's
    # files (the MLflow template, a champion's store) would vanish under the mutants, failing them all.
    temproot = where / "tmp"
    temproot.mkdir(exist_ok=True)
    env["PYTEST_DEBUG_TEMPROOT"] = str(temproot)
    command = [str(MUTMUT), *args]
    return subprocess.run(command, cwd=where, env=env, text=True, capture_output=True, check=False)


@dataclass
class Score:
    module: str
    caught: int
    total: int
    survivors: list[str]
    equivalent: list[str]
    pinned: int  # equivalents not re-run: their functions are unchanged since they last survived in full
    minutes: float

    @property
    def percent(self) -> float:
        counted = self.total - len(self.equivalent)
        return 100.0 * self.caught / counted if counted else 100.0

    def __str__(self) -> str:
        caught = f"{self.percent:.1f}% caught ({self.caught} caught of {self.total} mutants"
        equivalent = f", {len(self.equivalent)} equivalent, {self.pinned} of them pinned)" if self.equivalent else ")"
        return f"{self.module}: {caught}{equivalent}, {self.minutes:.1f} min"


def meta_file(where: Path, module: str) -> Path:
    """mutmut's record of the mutated file: each mutant's verdict, each function's source hash."""
    return where / "mutants" / "dropout_risk" / f"{module}.meta"


def function_hashes(where: Path, module: str) -> dict[str, str]:
    """mutmut's hash of each mutated function's source, by its key (``x_name``, ``xǁClassǁname``)."""
    hashes: dict[str, str] = json.loads(meta_file(where, module).read_text())["hash_by_function_name"]
    return hashes


def read_pins() -> dict[str, dict[str, str]]:
    return json.loads(PINS.read_text()) if PINS.is_file() else {}


def run(module: str, jobs: int, full: bool) -> Score:
    """Mutate ``module``, run each mutant's tests, and pin the equivalents that survived."""
    target = TARGETS[module]
    where = stage(module, target)
    listed_equivalents = EQUIVALENT.get(module, {})
    pins = {} if full else {name: h for name, h in read_pins().get(module, {}).items() if name in listed_equivalents}
    (where / "pins.json").write_text(json.dumps(pins))
    env = {
        "MUTATION_CACHED_FIXTURES": ",".join(target.cached),
        "MUTATION_PINS": str(where / "pins.json"),
        "MUTATION_META": str(meta_file(where, module)),
    }
    started = time.monotonic()
    done = mutmut(where, "run", "--max-children", str(jobs), extra_env=env)
    (where / "run.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"mutmut failed on {module} (see {where / 'run.log'})")
    minutes = (time.monotonic() - started) / 60
    mutmut(where, "export-cicd-stats")
    stats = json.loads((where / "mutants" / "mutmut-cicd-stats.json").read_text())
    listed = mutmut(where, "results").stdout.splitlines()
    not_caught = [line.strip().split(":")[0] for line in listed if line.strip()]
    equivalent = [name for name in not_caught if name in listed_equivalents]
    survivors = [name for name in not_caught if name not in equivalent]
    hashes = function_hashes(where, module)
    pinned = sum(1 for name in equivalent if pinned_and_unchanged(name, pins, hashes))
    save_pins(module, {name: hashes[function_of(name)] for name in equivalent})
    caught = stats["killed"] + stats["timeout"]
    return Score(module, caught, stats["total"] - stats["skipped"], survivors, equivalent, pinned, minutes)


def save_pins(module: str, pins: dict[str, str]) -> None:
    everything = read_pins() | {module: dict(sorted(pins.items()))}
    PINS.write_text(json.dumps(dict(sorted(everything.items())), indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--full", action="store_true", help="run the pinned equivalents' tests too")
    options = parser.parse_args()
    unknown = sorted(set(options.modules) - set(TARGETS))
    if unknown:
        parser.error(f"not a mutation target: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if not MUTMUT.exists():
        raise SystemExit(f"mutmut is not installed beside {sys.executable}: pip install 'mutmut>=3.8,<4'")
    modules = options.modules or list(TARGETS)
    scores = []
    for number, module in enumerate(modules, start=1):
        print(f"[{number}/{len(modules)}] {module} ...", flush=True)
        scores.append(run(module, options.jobs, options.full))
        print(f"    {scores[-1]}", flush=True)
    print(f"\nAll {len(scores)} modules in {sum(score.minutes for score in scores):.1f} min:")
    for score in scores:
        print(score)
        for name in score.survivors:
            print(f"    survived: {name}")


if __name__ == "__main__":
    main()
