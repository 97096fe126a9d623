"""Is the shipped model calibrated at each landmark session? Measured precisely enough to decide.

Run: ``.venv/bin/python scripts/landmark_calibration.py [--seeds 1 2 42 7] [--clients 5000]
[--independent 40000] [--resamples 200] [--json F]``.

For each seed S it simulates ``--clients`` clients (``simulate --seed S``), trains as ``make run`` does
(``train --truth``, holdout mode, as from 1,000 ended episodes; into a temporary MLflow SQLite store), loads
the REGISTERED model's scorer (``models.registry.load_scorer``, what ``score`` and serving run) and
scores (a) the run's held-out clients, as stored with the run, and (b) an independent cohort of
``--independent`` clients (seed S + ``--offset``) drawn from the SAME population as the training
cohort: ``simulation.cohort.population_of`` gives the training cohort's clinic table and intercept b0,
because a cohort simulated alone draws its own clinics and tunes its own b0 to the dropout rate, which
makes it another population. For each cohort, pooled and per landmark, for the model's risk and the
simulator's true risk on the same clients: ECE (the documented 10 bins), calibration slope and
intercept (logistic recalibration on logit(risk)) and ROC AUC, each with a client-bootstrap 95% CI
(``training.evaluation``'s functions, the ones training reports with); and the within-landmark AUC.

A landmark's verdict: ``meets`` (ECE <= 0.03 and slope 0.9-1.1), ``fails`` (a CI lies wholly beyond a
bound) or ``undecided``. Only aggregate figures are printed: no client identifier or score.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from dropout_risk.features.config import load_settings
from dropout_risk.features.contract import validate_contract
from dropout_risk.models.names import MODEL_NAME
from dropout_risk.models.registry import load_scorer
from dropout_risk.training.evaluation.bootstrap import bootstrap_metric_cis
from dropout_risk.training.evaluation.metrics import evaluate
from dropout_risk.training.evaluation.within_landmark import within_landmark_auc
from dropout_risk.training.jobs.promote import stored_test_data
from dropout_risk.training.jobs.score import score_sessions
from dropout_risk.training.jobs.train import train
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.simulation.cohort import SimulationConfig, population_of, simulate_cohort, write_cohort

METRICS = ("ece", "calibration_slope", "calibration_intercept", "roc_auc")
MAX_ECE = 0.03
SLOPE_RANGE = (0.9, 1.1)
SCORES = {"model": "risk", "truth": "true_risk"}


def say(message: str) -> None:
    print(message, flush=True)


def labelled_rows(
    scorer: Any, sessions: pd.DataFrame, episodes: pd.DataFrame, truth: pd.DataFrame, max_landmark: int
) -> pd.DataFrame:
    """client_id, landmark, label, risk (the scorer's), true_risk: one row per ended client and landmark."""
    ended = episodes[episodes["status"] != "ongoing"]
    sessions = sessions[sessions["client_id"].isin(ended["client_id"])]
    scored = score_sessions(scorer, sessions, ended)  # what ``dropout-risk score`` writes
    scored = scored[scored["session_number"] <= max_landmark]
    label = (ended.set_index("client_id")["status"] == "dropout").astype(float)
    keyed = truth.assign(client_id=truth["client_id"].astype(str))
    rows = scored.assign(client_id=scored["client_id"].astype(str)).merge(
        keyed, on=["client_id", "session_number"], how="left", validate="one_to_one"
    )
    if rows["true_risk"].isna().any():
        raise SystemExit("the truth has no true_risk for some scored sessions")
    rows["label"] = label.set_axis(label.index.astype(str)).loc[rows["client_id"]].to_numpy()
    return rows.rename(columns={"session_number": "landmark"})[["client_id", "landmark", "label", "risk", "true_risk"]]


def figures(rows: pd.DataFrame, resamples: int, seed: int) -> dict[str, Any]:
    """Point estimates and client-bootstrap CIs, pooled and per landmark, for the model and the truth."""
    out: dict[str, Any] = {"n_clients": int(rows["client_id"].nunique()), "n_rows": len(rows)}
    for name, score in SCORES.items():
        point = evaluate(rows, score=score)
        cis = bootstrap_metric_cis(rows, score=score, metrics=METRICS, n_resamples=resamples, seed=seed)
        within = within_landmark_auc(rows, score, n_resamples=resamples, seed=seed)
        groups = {"pooled": (point["pooled"], cis["pooled"])}
        groups |= {k: (v, cis["by_landmark"][k]) for k, v in point["by_landmark"].items()}
        out[name] = {
            group: {
                "n_clients": int(metrics["n_clients"]),
                "events": int(metrics["n_events"]),
                **{m: metrics[m] for m in METRICS},
                "ci": {m: ci[m] for m in METRICS},
            }
            for group, (metrics, ci) in groups.items()
        }
        out[name]["within_landmark_auc"] = {"auc": within.auc, "ci": list(within.ci), "landmarks": within.landmarks}
    for group, metrics in out["model"].items():
        if group != "within_landmark_auc":
            metrics["verdict"] = verdict(metrics)
    return out


def verdict(metrics: dict[str, Any]) -> str:
    """meets (both bounds by the point estimates), fails (an interval wholly beyond a bound), undecided."""
    ece, slope = metrics["ece"], metrics["calibration_slope"]
    ece_ci, slope_ci = metrics["ci"]["ece"], metrics["ci"]["calibration_slope"]
    lo, hi = SLOPE_RANGE
    if ece_ci[0] > MAX_ECE or slope_ci[1] < lo or slope_ci[0] > hi:
        return "fails"
    if ece <= MAX_ECE and lo <= slope <= hi:
        return "meets"
    return "undecided"


def report_difference(reported: dict[str, Any], held_out: dict[str, Any], intervals: bool) -> float:
    """The largest gap between training's per-landmark test figures and this script's on the held-out clients.

    Zero up to rounding when the registered scorer, loaded from the registry, scores the stored held-out
    clients as the trained model did in training: the two measure the same model on the same clients.
    ``intervals``: compare the ECE intervals too (same resamples and seed as training's bootstrap).
    """
    model = held_out["model"]
    gaps = [
        abs(figures_[metric] - model[landmark][metric])
        for landmark, figures_ in reported.items()
        for metric in METRICS
        if math.isfinite(figures_[metric])
    ]
    if intervals:
        for landmark, figures_ in reported.items():
            gaps += [abs(a - b) for a, b in zip(figures_["ci"]["ece"], model[landmark]["ci"]["ece"], strict=True)]
    return max(gaps)


def trained_version(data: Path, settings: TrainingSettings) -> tuple[str, str, dict[str, Any]]:
    """Train on the cohort in ``data`` as ``make run`` does; (version, run id, report)."""
    outcome = train(
        data / "sessions.csv",
        data / "episodes.csv",
        settings,
        truth_path=data / "truth.csv",
        progress=lambda message: say(f"    train: {message}"),
        # make run's mode at 5,000 clients (>= 1,000 ended episodes); said outright so a small trial run
        # of this script also has held-out clients (in small-data mode the run stores every client)
        evaluation="holdout",
    )
    return outcome.model_version, outcome.run_id, outcome.report


def measure_seed(seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Simulate, train, score held-out and independent clients with the registered model; the figures."""
    started, timings = time.monotonic(), {}
    config = SimulationConfig(n_clients=args.clients, seed=seed)
    say(f"seed {seed}: simulating {args.clients:,} clients")
    training_cohort = simulate_cohort(config)
    write_cohort(training_cohort, work / "data")
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    settings = load_settings(TrainingSettings, None)
    settings.training.artifact_location = (work / "mlruns").as_uri()
    version, run_id, report = trained_version(work / "data", settings)
    timings["simulate_and_train_s"] = time.monotonic() - started
    scorer = load_scorer(f"models:/{MODEL_NAME}/{version}")
    max_landmark = scorer.spec.max_landmark
    sessions, episodes, _oof = stored_test_data(MlflowClient(), run_id)
    say(f"seed {seed}: scoring the run's {episodes['client_id'].nunique():,} held-out clients")
    held_out = labelled_rows(scorer, sessions, episodes, training_cohort.truth, max_landmark)
    result: dict[str, Any] = {"seed": seed, "model_version": version, "model_kind": report["model_kind"]}
    result["calibration_intercept_shifts"] = report["validation"]["calibration_intercept_shifts"]
    # training's bootstrap seed: the held-out figures and intervals are then the training report's own
    result["held_out"] = figures(held_out, args.resamples, settings.training.seed)
    same_draws = args.resamples == settings.training.bootstrap_resamples
    gap = report_difference(report["test"]["by_landmark"], result["held_out"], same_draws)
    result["held_out"]["report_difference"] = gap
    compared = "figures and ECE intervals" if same_draws else "figures"
    say(f"seed {seed}: held-out {compared} minus the training report's: at most {gap:.1e}")
    timings["held_out_s"] = time.monotonic() - started - timings["simulate_and_train_s"]
    mark = time.monotonic()
    independent_seed = seed + args.offset
    say(f"seed {seed}: simulating {args.independent:,} independent clients (seed {independent_seed})")
    population = population_of(config)
    independent = config.model_copy(update={"n_clients": args.independent, "seed": independent_seed})
    other = simulate_cohort(independent, None, population)
    checked = validate_contract(other.sessions, other.episodes, settings.registry())
    if not checked.ok:
        raise SystemExit("the independent cohort fails the data contract")
    say(f"seed {seed}: scoring them with the registered model and bootstrapping ({args.resamples} resamples)")
    rows = labelled_rows(scorer, checked.sessions, checked.episodes, other.truth, max_landmark)
    result["independent"] = figures(rows, args.resamples, settings.training.seed)
    result["independent"]["seed"] = independent_seed
    result["independent"]["population_intercept"] = population.intercept
    timings["independent_s"] = time.monotonic() - mark
    timings["total_s"] = time.monotonic() - started
    result["timings"] = timings
    return result


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _with_ci(metrics: dict[str, Any], name: str, digits: int = 3) -> str:
    lo, hi = metrics["ci"][name]
    return f"{_fmt(metrics[name], digits)} ({_fmt(lo, digits)}-{_fmt(hi, digits)})"


def table(results: list[dict[str, Any]]) -> str:
    """One line per seed, cohort and landmark (pooled last): model and truth side by side."""
    header = (
        f"{'seed':>4} {'cohort':<11} {'lm':>6} {'clients':>7} {'ECE (95% CI)':<21} {'slope (95% CI)':<18} "
        f"{'intercept (95% CI)':<21} {'AUC':>5} {'verdict':<9} | {'true ECE':>8} {'true slope':>10} {'true AUC':>8}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for cohort in ("held_out", "independent"):
            figures_ = result[cohort]
            model, truth = figures_["model"], figures_["truth"]
            groups = [g for g in model if g not in ("pooled", "within_landmark_auc")] + ["pooled"]
            for group in groups:
                m, t = model[group], truth[group]
                lines.append(
                    f"{result['seed']:>4} {cohort:<11} {group:>6} {m['n_clients']:>7} {_with_ci(m, 'ece'):<21} "
                    f"{_with_ci(m, 'calibration_slope', 2):<18} {_with_ci(m, 'calibration_intercept', 2):<21} "
                    f"{_fmt(m['roc_auc']):>5} {m['verdict']:<9} | {_fmt(t['ece']):>8} "
                    f"{_fmt(t['calibration_slope'], 2):>10} {_fmt(t['roc_auc']):>8}"
                )
            w_model, w_truth = model["within_landmark_auc"], truth["within_landmark_auc"]
            lines.append(
                f"{result['seed']:>4} {cohort:<11} within-landmark AUC {_fmt(w_model['auc'])} "
                f"({_fmt(w_model['ci'][0])}-{_fmt(w_model['ci'][1])}), truth {_fmt(w_truth['auc'])}, "
                f"ratio {_fmt(w_model['auc'] / w_truth['auc'])}"
            )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 42, 7], help="training seeds (one at a time)")
    parser.add_argument("--clients", type=int, default=5000, help="training cohort size (make run's 5,000)")
    parser.add_argument("--independent", type=int, default=40000, help="independent cohort size")
    parser.add_argument("--offset", type=int, default=1000, help="independent cohort seed = training seed + this")
    parser.add_argument("--resamples", type=int, default=200, help="client-bootstrap resamples (at least 20)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = parser.parse_args(argv)
    if args.resamples < 20:
        parser.error("--resamples must be at least 20")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    results = []
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix=f"landmark-calibration-{seed}-") as tmp:
                results.append(measure_seed(seed, args, Path(tmp)))
            say(f"seed {seed}: done in {results[-1]['timings']['total_s']:.0f} s")
    finally:
        # None puts MLflow back on its default (or the environment's store); its annotation does not say so.
        mlflow.set_tracking_uri(previous_uri)  # type: ignore[arg-type]
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"figures: {args.json}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
