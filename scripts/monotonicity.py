"""How often a registered model's risk falls when a held-out client's latest session gets worse (issue 16).

Run: ``MLFLOW_TRACKING_URI=... .venv/bin/python scripts/monotonicity.py --version N [--json F] [--step 5]``.
Loads version N of ``dropout-risk`` as the service does (its scorer artifact, nothing unpickled),
takes the held-out test clients its training run stored, and prints the violation rates of the
standard perturbations (``training.evaluation.monotonicity``), over all sessions and from session 2.
Only counts are printed: no client identifier or score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from dropout_risk.models.names import MODEL_NAME
from dropout_risk.models.registry import load_scorer
from dropout_risk.training.evaluation.monotonicity import MonotonicityReport, monotonicity_violations
from dropout_risk.training.jobs.promote import stored_test_data


def test_clients(version: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out sessions and episodes stored with the training run of ``version``."""
    client = MlflowClient()
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    if run_id is None:
        raise SystemExit(f"version {version} has no training run")
    sessions, episodes, _oof = stored_test_data(client, run_id)
    return sessions, episodes


def measure(version: str, step: float) -> MonotonicityReport:
    sessions, episodes = test_clients(version)
    scorer = load_scorer(f"models:/{MODEL_NAME}/{version}")
    return monotonicity_violations(scorer, sessions, episodes, step=step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="registered version of dropout-risk")
    parser.add_argument("--step", type=float, default=5.0, help="points a score is made worse (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    report = measure(args.version, args.step)
    print(f"{MODEL_NAME} v{args.version}: risk fell (by more than {report.tolerance:g}) after a worse latest session")
    print(report.format_table())
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")


if __name__ == "__main__":
    main()
