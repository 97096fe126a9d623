"""Fixtures shared across the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def trial_dir() -> Path:
    """The real antidepressant-trial data (shared/data beside the checkout)."""
    path = SHARED_DATA / "antidepressant-trial"
    if not (path / "sessions.csv").is_file():
        pytest.skip(f"real trial data not found at {path} (it ships in shared/data beside the checkout)")
    return path
