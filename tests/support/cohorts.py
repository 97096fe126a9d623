"""Simulated cohorts for the tests, each simulated (and written to CSV) once per session for its parameters.

The ``cohorts`` fixture (tests/conftest.py) is the suite's one source of simulated clinics. A cohort's
frames come back as copies, so a test may change them; its files (``files``) are shared by every test
that asks for the same parameters: read them, and write anything derived from them elsewhere
(``tmp_path``), or take a copy of the test's own with ``write``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from dropout_risk.training.simulation.cohort import Cohort, SimulationConfig, simulate_cohort, write_cohort


class Cohorts:
    """Cohorts by simulation parameters (``SimulationConfig``'s fields), cached for the session."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._simulated: dict[SimulationConfig, Cohort] = {}
        self._files: dict[SimulationConfig, dict[str, Path]] = {}

    def config(self, n_clients: int, seed: int, **options: Any) -> SimulationConfig:
        return SimulationConfig(n_clients=n_clients, seed=seed, **options)

    def simulate(self, n_clients: int, seed: int, **options: Any) -> Cohort:
        """The cohort's tables (copies: the cached ones stay as simulated)."""
        cohort = self._cohort(self.config(n_clients, seed, **options))
        return replace(
            cohort, sessions=cohort.sessions.copy(), episodes=cohort.episodes.copy(), truth=cohort.truth.copy()
        )

    def files(self, n_clients: int, seed: int, **options: Any) -> dict[str, Path]:
        """sessions.csv, episodes.csv and truth.csv as ``write_cohort`` writes them (shared: read only)."""
        config = self.config(n_clients, seed, **options)
        if config not in self._files:
            directory = self._directory / f"cohort-{len(self._files)}"
            self._files[config] = write_cohort(self._cohort(config), directory)
        return dict(self._files[config])

    def write(self, directory: Path, n_clients: int, seed: int, **options: Any) -> dict[str, Path]:
        """The same files, written to ``directory``: a copy of the test's own, to change as it likes."""
        return write_cohort(self._cohort(self.config(n_clients, seed, **options)), directory)

    def _cohort(self, config: SimulationConfig) -> Cohort:
        if config not in self._simulated:
            self._simulated[config] = simulate_cohort(config)
        return self._simulated[config]
