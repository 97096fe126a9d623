"""A small simulated clinic shared by the model tests (built once per session; treat it as read-only)."""

from __future__ import annotations

import pytest

from tests.support.clinic import Clinic, build_clinic


@pytest.fixture(scope="session")
def clinic(cohorts) -> Clinic:
    return build_clinic(cohorts.simulate(400, seed=11))
