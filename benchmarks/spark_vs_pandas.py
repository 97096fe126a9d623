"""Session rows per second: the pandas engine vs the Spark engine, features and scoring.

    .venv/bin/python benchmarks/spark_vs_pandas.py [--rows 2000000] [--master local[2]] [--seed 0]

Simulates a cohort (training.simulation) cut to exactly ``--rows`` session rows
(~300,000 clients for 2 million rows), writes it as Parquet, trains a small
model in a throwaway MLflow store, then times the two commands end to end,
files in and Parquet out, as a user runs them:

- features: the pandas engine (read, validate, infer the spec, fit the curves,
  build_features, write) vs ``training.spark.jobs.features_job``;
- scoring: ``training.jobs.score.score_file`` vs ``training.spark.jobs.score_job``.

Spark's session start and a small warm-up job (JVM, Python workers importing
pandas and pandera) are timed apart: they are paid once per session. Both
engines' outputs are compared (to 1e-9) so the figures are for the same work.
Prints no client ids or scores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.training.data import load_contract, write_table
from dropout_risk.training.jobs.score import score_file
from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort
from dropout_risk.training.spark.jobs import features_job, score_job
from dropout_risk.training.spark.session import spark_session

SESSIONS_PER_CLIENT = 6.6  # the simulator's mean, to size the cohort


def cohort_parquet(rows: int, seed: int, directory: Path) -> dict[str, Path]:
    """sessions.parquet / episodes.parquet with exactly ``rows`` session rows (whole clients, the last cut short)."""
    n_clients = int(rows / SESSIONS_PER_CLIENT * 1.1) + 100
    cohort = simulate_cohort(SimulationConfig(n_clients=n_clients, seed=seed))
    sessions = cohort.sessions.iloc[:rows]
    kept = sessions["client_id"].unique()
    episodes = cohort.episodes[cohort.episodes["client_id"].isin(kept)]
    paths = {"sessions": directory / "sessions.parquet", "episodes": directory / "episodes.parquet"}
    sessions.to_parquet(paths["sessions"], index=False)
    episodes.to_parquet(paths["episodes"], index=False)
    return paths


def pandas_features(paths: dict[str, Path], out: Path) -> dict[str, float]:
    """What `dropout-risk features` does, stage by stage."""
    registry = default_registry()
    start = time.perf_counter()
    result = load_contract(paths["sessions"], paths["episodes"], registry)
    assert result.ok, result.problems[:3]
    validated = time.perf_counter()
    spec = infer_spec(result.sessions, result.episodes, registry, FeatureConfig())
    table = build_features(result.sessions, result.episodes, spec, fit_expected_trajectories(result.sessions, spec))
    built = time.perf_counter()
    write_table(table, out)
    done = time.perf_counter()
    return {
        "total": done - start,
        "read+validate": validated - start,
        "features": built - validated,
        "write": done - built,
    }


def train_model(directory: Path, seed: int):
    """A small logistic model registered in a throwaway SQLite store (the scoring work does not depend on it)."""
    import mlflow

    from dropout_risk.models.registry import load_scorer
    from dropout_risk.training.jobs.train import train
    from dropout_risk.training.settings import TrainingConfig, TrainingSettings

    uri = f"sqlite:///{directory}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    paths = write_cohort(simulate_cohort(SimulationConfig(n_clients=3000, seed=seed + 1)), directory / "train")
    settings = TrainingSettings(
        training=TrainingConfig(
            folds=3, candidates=["logistic"], bootstrap_resamples=20, artifact_location=str(directory / "artifacts")
        )
    )
    outcome = train(paths["sessions"], paths["episodes"], settings)
    return load_scorer(f"models:/dropout-risk/{outcome.model_version}")


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def rate(rows: int, seconds: float) -> str:
    return f"{seconds:7.1f} s  {rows / seconds:>11,.0f} session rows/s"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--driver-memory", default="6g", help="JVM heap of a local Spark (the executors live in it)")
    args = parser.parse_args()
    registry = default_registry()

    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        directory = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, load average {load()}")
        paths, seconds = timed(cohort_parquet, args.rows, args.seed, directory)
        clients = pd.read_parquet(paths["episodes"], columns=["client_id"]).shape[0]
        print(f"cohort: {args.rows:,} session rows, {clients:,} clients, simulated and written in {seconds:.1f} s")
        model, seconds = timed(train_model, directory, args.seed)
        print(f"model: {model.kind}, trained and registered in {seconds:.1f} s")

        spark, seconds = timed(
            spark_session, args.master, "dropout-risk-bench", {"spark.driver.memory": args.driver_memory}
        )
        print(
            f"spark: {args.master}, {spark.conf.get('spark.sql.shuffle.partitions')} shuffle partitions, "
            f"session started in {seconds:.1f} s"
        )
        (directory / "warm").mkdir()
        warm = cohort_parquet(20_000, args.seed + 2, directory / "warm")
        _, seconds = timed(
            features_job,
            spark,
            warm["sessions"],
            warm["episodes"],
            directory / "warm" / "features.parquet",
            registry,
            FeatureConfig(),
        )
        _, more = timed(
            score_job,
            spark,
            model,
            warm["sessions"],
            warm["episodes"],
            directory / "warm" / "risk.parquet",
            registry,
        )
        print(
            f"spark warm-up (features and scoring of 20,000 rows; the Python workers import pandas, pandera, "
            f"MLflow): {seconds + more:.1f} s"
        )

        print(f"\nfeatures ({args.rows:,} session rows, Parquet in and out); load average {load()}")
        stages = pandas_features(paths, directory / "pandas_features.parquet")
        print(
            f"  pandas        {rate(args.rows, stages['total'])}   ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items() if k != "total")
            + ")"
        )
        job, spark_seconds = timed(
            features_job,
            spark,
            paths["sessions"],
            paths["episodes"],
            directory / "spark_features.parquet",
            registry,
            FeatureConfig(),
        )
        print(f"  spark         {rate(args.rows, spark_seconds)}   ({args.master}: {stages_text(job)})")
        print(f"  spark/pandas  {stages['total'] / spark_seconds:.2f}x the pandas rate")
        same_features(directory / "pandas_features.parquet", directory / "spark_features.parquet")

        print(f"\nscoring ({args.rows:,} session rows, Parquet in and out); load average {load()}")
        _, pandas_seconds = timed(
            score_file, model, paths["sessions"], paths["episodes"], directory / "pandas_risk.parquet", registry
        )
        print(f"  pandas        {rate(args.rows, pandas_seconds)}")
        job, spark_seconds = timed(
            score_job,
            spark,
            model,
            paths["sessions"],
            paths["episodes"],
            directory / "spark_risk.parquet",
            registry,
        )
        print(f"  spark         {rate(args.rows, spark_seconds)}   ({args.master}: {stages_text(job)})")
        print(f"  spark/pandas  {pandas_seconds / spark_seconds:.2f}x the pandas rate")
        same_risks(directory / "pandas_risk.parquet", directory / "spark_risk.parquet")
        print(f"\nload average at the end: {load()}")
        spark.stop()


def stages_text(job) -> str:
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in job.seconds.items())


def same_features(pandas_path: Path, spark_path: Path) -> None:
    expected = pd.read_parquet(pandas_path).sort_values(["client_id", "landmark"]).reset_index(drop=True)
    got = pd.read_parquet(spark_path).sort_values(["client_id", "landmark"]).reset_index(drop=True)
    numeric = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    assert len(expected) == len(got) and list(expected.columns) == list(got.columns)
    assert (expected["client_id"].to_numpy() == got["client_id"].to_numpy()).all()
    np.testing.assert_allclose(got[numeric].to_numpy(float), expected[numeric].to_numpy(float), rtol=0, atol=1e-9)
    print(f"  outputs equal to 1e-9 ({len(got):,} feature rows x {got.shape[1]} columns)")


def same_risks(pandas_path: Path, spark_path: Path) -> None:
    expected = pd.read_parquet(pandas_path)
    got = pd.read_parquet(spark_path).sort_values(["client_id", "session_number"]).reset_index(drop=True)
    assert (expected["client_id"].to_numpy() == got["client_id"].to_numpy()).all()
    np.testing.assert_allclose(got["risk"].to_numpy(), expected["risk"].to_numpy(), rtol=0, atol=1e-9)
    print(f"  outputs equal to 1e-9 ({len(got):,} risks)")


if __name__ == "__main__":
    main()
