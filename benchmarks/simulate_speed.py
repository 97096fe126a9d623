"""Time ``simulate_cohort`` + ``write_cohort`` for 20,000 clients (target < 30 s, aim < 5 s).

Run: ``.venv/bin/python benchmarks/simulate_speed.py [n_clients]``.  Prints only timings
and row counts, never client data.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort  # noqa: E402

TARGET_SECONDS = 30.0


def main(n_clients: int = 20_000) -> float:
    config = SimulationConfig(n_clients=n_clients, seed=0)
    start = time.perf_counter()
    cohort = simulate_cohort(config)
    simulated = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_cohort(cohort, Path(tmp))
    written = time.perf_counter()
    total = written - start
    print(f"clients={n_clients} session_rows={len(cohort.sessions)}")
    print(
        f"simulate_seconds={simulated - start:.2f} write_seconds={written - simulated:.2f} "
        f"total_seconds={total:.2f} target_seconds={TARGET_SECONDS:.0f}"
    )
    return total


if __name__ == "__main__":
    seconds = main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    sys.exit(0 if seconds < TARGET_SECONDS else 1)
