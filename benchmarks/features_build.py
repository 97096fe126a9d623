"""Time the landmark feature builder on a million session rows.

    .venv/bin/python benchmarks/features_build.py [--rows 1000000] [--seed 0]

Makes its own synthetic clinic (vectorised, no simulator dependency): clients
with 1-12 sessions, weekly-ish dates, ORS and SRS with some missing scores,
missed appointments, age and gender. Times ``fit_expected_trajectories`` and
``build_features`` separately and prints seconds and input session rows per
second. Target: build_features on 1,000,000 rows in under 20 s on 2 cores.
Prints no client ids or scores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories

MIN_SESSIONS, MAX_SESSIONS = 4, 12  # mean 8: about 125,000 clients per million rows
MISSING_SCORE = 0.1
MISSING_MISSED = 0.2


def synthetic_clinic(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sessions, episodes) with exactly ``rows`` session rows."""
    rng = np.random.default_rng(seed)
    # Draw more clients than needed, then cut at exactly `rows` (the last client may be short).
    n_clients = int(rows / (MIN_SESSIONS + MAX_SESSIONS) * 2 * 1.1) + 1
    counts = rng.integers(MIN_SESSIONS, MAX_SESSIONS + 1, size=n_clients)
    ends = np.cumsum(counts)
    n_clients = int(np.searchsorted(ends, rows)) + 1
    counts = counts[:n_clients]
    counts[-1] -= int(ends[n_clients - 1] - rows)

    client = np.repeat(np.arange(n_clients), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    session = np.arange(rows) - starts + 1

    gaps = np.where(session == 1, 0, rng.integers(4, 15, size=rows))
    total_gap = np.cumsum(gaps)
    days = total_gap - total_gap[starts]
    intake_day = rng.integers(0, 3 * 365, size=n_clients)
    dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(intake_day[client] + days, unit="D")

    intake = np.clip(rng.normal(19, 7, size=n_clients), 0, 40)
    gain = rng.normal(1.0, 0.8, size=n_clients)
    ors = np.clip(intake[client] + gain[client] * (session - 1) + rng.normal(0, 3, size=rows), 0, 40).round(1)
    srs = np.clip(rng.normal(36.5, 3.5, size=rows), 0, 40).round(1)
    missed = rng.poisson(0.2, size=rows).astype(float)

    ids = pd.Series(np.arange(n_clients)).astype(str).str.zfill(7).radd("c").astype("string")
    sessions = pd.DataFrame(
        {
            "client_id": ids.take(client).reset_index(drop=True),
            "session_number": session.astype(np.int64),
            "session_date": dates,
            "missed_since_last": np.where(rng.random(rows) < MISSING_MISSED, np.nan, missed),
            "ors": np.where(rng.random(rows) < MISSING_SCORE, np.nan, ors),
            "srs": np.where(rng.random(rows) < MISSING_SCORE, np.nan, srs),
        }
    )
    status = rng.choice(np.array(["dropout", "completed", "ongoing"]), size=n_clients, p=[0.25, 0.65, 0.10])
    episodes = pd.DataFrame(
        {
            "client_id": ids,
            "status": pd.array(status, dtype="string"),
            "clinic_id": pd.array(np.char.add("k", rng.integers(0, 20, n_clients).astype(str)), dtype="string"),
            "age": rng.integers(18, 80, size=n_clients).astype(float),
            "gender": pd.array(
                rng.choice(np.array(["f", "m", "nb"]), size=n_clients, p=[0.6, 0.38, 0.02]), dtype="string"
            ),
        }
    )
    return sessions, episodes


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (sessions, episodes), seconds = timed(synthetic_clinic, args.rows, args.seed)
    print(f"generated {len(sessions):,} session rows, {len(episodes):,} clients in {seconds:.2f} s")

    spec = infer_spec(sessions, episodes, default_registry(), FeatureConfig())
    trajectories, seconds = timed(fit_expected_trajectories, sessions, spec)
    print(f"fit_expected_trajectories: {seconds:.2f} s ({len(sessions) / seconds:,.0f} session rows/s)")

    features, seconds = timed(build_features, sessions, episodes, spec, trajectories)
    print(
        f"build_features: {seconds:.2f} s ({len(sessions) / seconds:,.0f} session rows/s; "
        f"{len(features):,} feature rows x {features.shape[1]} columns)"
    )


if __name__ == "__main__":
    main()
