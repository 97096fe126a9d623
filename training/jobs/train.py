"""The training job: validated files in, a calibrated model registered as the challenger out.

Nothing touches MLflow until the data have passed every check: bad data stop
the job before a run, a model or an alias exists.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd

from dropout_risk.features.concepts import directions, model_columns
from dropout_risk.features.contract import ContractError
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.private_files import private_tree
from dropout_risk.features.spec import FeatureSpec, infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.models.calibration import Method, ProbabilityCalibrator
from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.models.registry import CHALLENGER, MODEL_NAME, log_model, set_alias
from dropout_risk.training.baselines import BASELINES, BaselineRisk, baseline_risks
from dropout_risk.training.cv_estimate import cross_validate
from dropout_risk.training.data import load_contract, read_table
from dropout_risk.training.evaluation.clinic_validation import leave_one_clinic_out_metrics, summarise
from dropout_risk.training.evaluation.holdout import evaluate_scores, subgroups, true_risk_comparison
from dropout_risk.training.evaluation.model_card import render_model_card
from dropout_risk.training.evaluation.monotonicity import MonotonicityReport, monotonicity_violations
from dropout_risk.training.evaluation.plots import plot_by_landmark, plot_calibration, plot_decision_curve, plot_roc
from dropout_risk.training.evaluation.within_landmark import WithinLandmarkAUC, stratified_within_landmark_auc
from dropout_risk.training.fitting import CandidateResult, Selection, fit_calibrated, fit_candidates, select
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import (
    SplitKind,
    check_enough_clients,
    check_enough_test_clients,
    grouped_folds,
    holdout_clients,
)
from dropout_risk.training.tracking import log_dataset, log_report_metrics, use_experiment

Progress = Callable[[str], None]
TEST_DATA_DIR = "evaluation"
OOF_FILE = "oof.parquet"  # small-data mode: out-of-fold risks, in TEST_DATA_DIR


class TrainingDataError(ValueError):
    """Data that passed the contract but cannot train a model (one class, too few clients)."""


@dataclass
class TrainOutcome:
    report: dict[str, Any]
    run_id: str
    model_version: str
    oof: pd.DataFrame | None = None  # small-data mode: every model's out-of-fold risks per client and session


EvaluationMode = Literal["holdout", "cv"]


@dataclass
class _Prepared:
    sessions: pd.DataFrame
    episodes: pd.DataFrame
    train_ids: np.ndarray
    test_ids: np.ndarray  # empty in small-data mode: every client is scored out of fold instead
    n_ongoing: int
    mode: EvaluationMode = "holdout"
    mode_reason: str = ""


def _prepare(
    sessions_path: Path,
    episodes_path: Path,
    settings: TrainingSettings,
    split: SplitKind,
    evaluation: EvaluationMode | None,
) -> _Prepared:
    data = load_contract(sessions_path, episodes_path, settings.registry())
    if not data.ok:
        raise ContractError(data.problems)
    ended = data.episodes[data.episodes["status"] != "ongoing"]
    n_ongoing = len(data.episodes) - len(ended)
    labels = (ended["status"] == "dropout").astype(float)
    if labels.empty:  # every episode ongoing: the outcome of none is known yet
        raise TrainingDataError("no ended episodes: a model needs both dropout and completed episodes")
    if labels.nunique() < 2:
        only = "dropout" if labels.iloc[0] == 1 else "completed"
        raise TrainingDataError(
            f"every ended episode has the same status ({only}): a model needs both dropout and completed episodes"
        )
    config = settings.training
    # Enough for every fold and for a test set beside them.
    check_enough_clients(
        labels, folds=config.folds, test_set=True, min_per_fold=config.min_clients_per_fold, what="ended episodes"
    )
    sessions = data.sessions[data.sessions["client_id"].isin(ended["client_id"])].reset_index(drop=True)
    firsts = sessions.groupby("client_id", sort=True)["session_date"].min()
    clients = pd.DataFrame(
        {
            "client_id": firsts.index,
            "first_date": firsts.to_numpy(),
            "label": labels.set_axis(ended["client_id"]).loc[firsts.index].to_numpy(),
        }
    )
    mode, reason = _evaluation_mode(len(clients), settings, evaluation)
    if mode == "cv":
        ids = np.sort(clients["client_id"].to_numpy())
        return _Prepared(sessions, ended.reset_index(drop=True), ids, ids[:0], n_ongoing, mode, reason)
    train_ids, test_ids = holdout_clients(clients, fraction=config.test_fraction, kind=split, seed=config.seed)
    by_client = clients.set_index("client_id")["label"]
    check_enough_clients(
        by_client.loc[train_ids], folds=config.folds, min_per_fold=config.min_clients_per_fold, what="training clients"
    )
    check_enough_test_clients(
        by_client.loc[test_ids], min_clients=config.min_clients_per_fold, fraction=config.test_fraction
    )
    return _Prepared(sessions, ended.reset_index(drop=True), train_ids, test_ids, n_ongoing, mode, reason)


def _evaluation_mode(
    n_ended: int, settings: TrainingSettings, asked: EvaluationMode | None
) -> tuple[EvaluationMode, str]:
    """Holdout or repeated cross-validation (small-data mode), and why, in words for the report."""
    threshold = settings.evaluation.small_data_clients
    if asked is not None:
        return asked, f"asked for (--evaluation {asked}) with {n_ended} ended episodes"
    if n_ended < threshold:
        return "cv", (
            f"{n_ended} ended episodes, below evaluation.small_data_clients ({threshold}): a holdout would be a few "
            "dozen clients, so every client is scored out of fold by repeated cross-validation instead"
        )
    return "holdout", f"{n_ended} ended episodes, at least evaluation.small_data_clients ({threshold})"


def _with_last_session(features: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    last = sessions.groupby("client_id")["session_number"].max().rename("last_session")
    return features.join(last, on="client_id")


def _data_summary(prep: _Prepared, digests: dict[str, str]) -> dict:
    dates = prep.sessions.groupby("client_id")["session_date"].min()
    return {
        "clients": int(len(prep.episodes)),
        "sessions": int(len(prep.sessions)),
        "ongoing_excluded": prep.n_ongoing,
        "dropout_rate": float((prep.episodes["status"] == "dropout").mean()),
        "train_clients": int(len(prep.train_ids)),
        "test_clients": int(len(prep.test_ids)),
        "first_date": str(dates.min().date()),
        "last_date": str(dates.max().date()),
        "sessions_digest": digests["sessions"],
        "episodes_digest": digests["episodes"],
    }


def train(
    sessions_path: Path,
    episodes_path: Path,
    settings: TrainingSettings,
    *,
    truth_path: Path | None = None,
    split: SplitKind = "random",
    leave_one_clinic_out: bool = False,
    progress: Progress | None = None,
    evaluation: EvaluationMode | None = None,
) -> TrainOutcome:
    """Validate, split by client, select, calibrate, evaluate, log and register as challenger."""
    say = progress or (lambda _message: None)
    config = settings.training
    say("validating data")
    prep = _prepare(sessions_path, episodes_path, settings, split, evaluation)
    truth = _read_truth(truth_path) if truth_path else None

    say("building landmark features")
    fitted = _fit(prep, settings, say)

    oof = None
    if prep.mode == "cv":
        scored, baselines, oof = _cross_validated(fitted, prep, settings, say)
    else:
        say("evaluating on held-out clients")
        scored, baselines = _score_test_rows(fitted, config.calibration)
    report = _report(fitted, scored, baselines, settings, split, leave_one_clinic_out, oof)
    report["evaluation"] = _evaluation_section(prep, settings)
    if leave_one_clinic_out:
        say("leave-one-clinic-out validation")
        per_clinic = leave_one_clinic_out_metrics(fitted.features, fitted.selection.chosen, config)
        report["leave_one_clinic_out"] = {"summary": summarise(per_clinic), "by_clinic": per_clinic}
    say("checking that a worse session never lowers the risk")
    report["monotonicity"] = _monotonicity(fitted, prep).to_json()
    if truth is not None:
        scored = _with_truth(scored, truth)
        test = report["test"]
        report["true_risk"] = true_risk_comparison(scored, test, settings.evaluation.min_class_clients)

    say("logging to MLflow and registering")
    outcome = _log_and_register(fitted, scored, report, prep, settings, split, (sessions_path, episodes_path), oof)
    return TrainOutcome(outcome.report, outcome.run_id, outcome.model_version, oof)


def _cross_validated(
    fitted: _Fitted, prep: _Prepared, settings: TrainingSettings, say: Progress
) -> tuple[pd.DataFrame, list[BaselineRisk], pd.DataFrame]:
    """Small-data mode: every client's out-of-fold risks (averaged over repeats) as the scored rows."""
    chosen = fitted.selection.chosen
    cv = cross_validate(prep.sessions, prep.episodes, settings, {chosen.kind: chosen.params}, say)
    described = fitted.features.drop(columns=["label"])  # covariates and ids, for subgroups and the truth
    scored = cv.scored.merge(described, on=["client_id", "landmark"], how="left", validate="one_to_one")
    scored["risk"] = scored[chosen.kind]
    baselines = [
        BaselineRisk(name, None, cv.not_applicable[name])
        if name in cv.not_applicable
        else BaselineRisk(name, scored[name].to_numpy())
        for name in BASELINES
    ]
    return scored, baselines, cv.oof.assign(registered=cv.oof[chosen.kind])


def _evaluation_section(prep: _Prepared, settings: TrainingSettings) -> dict[str, Any]:
    section: dict[str, Any] = {"mode": prep.mode, "reason": prep.mode_reason}
    if prep.mode == "cv":
        section |= {"folds": settings.evaluation.cv_folds, "repeats": settings.evaluation.cv_repeats}
    return section


def _monotonicity(fitted: _Fitted, prep: _Prepared) -> MonotonicityReport:
    """How often making a held-out client's latest session worse lowers the chosen model's risk.

    In small-data mode there are no held-out clients: the registered model is checked on every client
    (monotonicity is a property of the model's function, not an estimate of performance).
    """
    ids = prep.test_ids if len(prep.test_ids) else prep.train_ids
    test = prep.sessions["client_id"].isin(ids)
    episodes = prep.episodes[prep.episodes["client_id"].isin(ids)]
    return monotonicity_violations(fitted.model, prep.sessions[test], episodes)


@dataclass
class _Fitted:
    """The chosen model and what it was fitted and will be evaluated on."""

    spec: FeatureSpec
    features: pd.DataFrame  # every ended client's landmark rows, with last_session
    train_rows: pd.DataFrame
    test_rows: pd.DataFrame
    columns: list[str]
    candidates: dict[str, CandidateResult]
    selection: Selection
    model: DropoutRiskModel
    folds: list  # the client-grouped folds of the training rows


def _fit(prep: _Prepared, settings: TrainingSettings, say: Progress) -> _Fitted:
    """Spec and curves from the training clients; candidates by grouped CV; the chosen one calibrated."""
    config = settings.training
    train_sessions = prep.sessions[prep.sessions["client_id"].isin(prep.train_ids)]
    train_episodes = prep.episodes[prep.episodes["client_id"].isin(prep.train_ids)]
    spec = infer_spec(train_sessions, train_episodes, settings.registry(), settings.features)
    trajectories = fit_expected_trajectories(train_sessions, spec)
    features = _with_last_session(build_features(prep.sessions, prep.episodes, spec, trajectories), prep.sessions)
    is_test = features["client_id"].isin(prep.test_ids).to_numpy()
    train_rows, test_rows = features[~is_test].reset_index(drop=True), features[is_test].reset_index(drop=True)
    y_train = train_rows["label"].to_numpy(dtype=int)
    columns = model_columns(spec, config.feature_groups)

    folds = grouped_folds(train_rows, folds=config.folds, seed=config.seed)
    candidates = fit_candidates(
        train_rows, y_train, columns, folds, config, progress=say, directions=directions(spec, columns)
    )
    selection = select(candidates, config.candidates, config.selection_margin)
    chosen = selection.chosen
    say(f"calibrating {chosen.kind} on out-of-fold predictions")
    estimator, calibrator = fit_calibrated(chosen, train_rows, y_train, config.calibration)
    model = DropoutRiskModel(
        spec=spec,
        trajectories=trajectories,
        kind=chosen.kind,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
        metadata={"chosen": chosen.kind, "params": chosen.params},
    ).fit_reference(train_rows)
    return _Fitted(spec, features, train_rows, test_rows, columns, candidates, selection, model, folds)


def _score_test_rows(fitted: _Fitted, calibration: Method) -> tuple[pd.DataFrame, list[BaselineRisk]]:
    """The test rows with the model's ``risk`` and each applicable baseline's; the baselines themselves."""
    scored = fitted.test_rows.assign(risk=fitted.model.predict_features(fitted.test_rows))
    baselines = baseline_risks(
        fitted.train_rows, fitted.test_rows, fitted.spec, fitted.candidates["logistic"], fitted.folds, calibration
    )
    for baseline in baselines:
        if baseline.risk is not None:
            scored[baseline.name] = baseline.risk
    return scored, baselines


def _report(
    fitted: _Fitted,
    scored: pd.DataFrame,
    baselines: list[BaselineRisk],
    settings: TrainingSettings,
    split: SplitKind,
    leave_one_clinic_out: bool,
    oof: pd.DataFrame | None,
) -> dict[str, Any]:
    """The report's model, test, baselines, selection, validation and subgroup sections."""
    config = settings.training

    def within(score: str) -> WithinLandmarkAUC | None:
        if oof is None:
            return None
        return stratified_within_landmark_auc(
            oof,
            "registered" if score == "risk" else score,
            min_class_clients=settings.evaluation.min_class_clients,
            n_resamples=config.bootstrap_resamples,
            seed=config.seed,
        )

    def evaluated(score: str) -> dict[str, Any]:
        return evaluate_scores(
            scored,
            score,
            n_resamples=config.bootstrap_resamples,
            seed=config.seed,
            top_fraction=config.alert_top_fraction,
            min_class_clients=settings.evaluation.min_class_clients,
            within=within(score),
        )

    chosen = fitted.selection.chosen
    return {
        "model_name": MODEL_NAME,
        "model_version": None,
        "model_kind": chosen.kind,
        "test": evaluated("risk"),
        "baselines": {
            b.name: evaluated(b.name) if b.risk is not None else {"not_applicable": b.not_applicable} for b in baselines
        },
        "selection": {
            "cv_within_landmark_auc": {k: r.cv_within for k, r in fitted.candidates.items()},
            "cv_auc": {k: r.cv_auc for k, r in fitted.candidates.items()},
            "chosen": chosen.kind,
            "rule": fitted.selection.rule,
            "difference": fitted.selection.difference,
            "standard_error": fitted.selection.standard_error,
            "margin": config.selection_margin,
            "params": chosen.params,
            "feature_groups": list(config.feature_groups),
            "n_features": len(fitted.columns),
        },
        "validation": {
            "split": split,
            "leave_one_clinic_out": leave_one_clinic_out,
            "folds": config.folds,
            "calibration": config.calibration,
            # the landmarks with a Platt intercept of their own (the others take the pooled one), and how
            # far each is from the pooled one on the log-odds after shrinkage
            "calibration_landmarks": sorted(fitted.model.calibrator.landmark_intercepts_),
            "calibration_intercept_shifts": _intercept_shifts(fitted.model.calibrator),
            "bootstrap_resamples": config.bootstrap_resamples,
        },
        "subgroups": subgroups(scored, "risk"),
        "promoted": False,
    }


def _intercept_shifts(calibrator: ProbabilityCalibrator) -> dict[str, float]:
    pooled = calibrator.logit_intercept
    return {str(k): b - pooled for k, b in sorted(calibrator.landmark_intercepts_.items())}


def _with_truth(scored: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The scored rows with the simulator's ``true_risk`` at each landmark."""
    scored = scored.merge(
        truth,
        left_on=["client_id", "landmark"],
        right_on=["client_id", "session_number"],
        how="left",
        validate="one_to_one",
    ).drop(columns="session_number")
    if scored["true_risk"].isna().any():
        raise TrainingDataError("the truth file has no true_risk for some scored sessions")
    return scored


def _log_and_register(
    fitted: _Fitted,
    scored: pd.DataFrame,
    report: dict[str, Any],
    prep: _Prepared,
    settings: TrainingSettings,
    split: SplitKind,
    paths: tuple[Path, Path],
    oof: pd.DataFrame | None,
) -> TrainOutcome:
    """One MLflow run: data digests, parameters, figures, test data, the model (registered as challenger)."""
    config, spec, chosen = settings.training, fitted.spec, fitted.selection.chosen
    use_experiment(config.experiment, config.artifact_location)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        report["data"] = {**_data_summary(prep, log_dataset(*paths)), "instruments": [i.key for i in spec.instruments]}
        mlflow.log_params(
            {
                "model_kind": chosen.kind,
                "split": split,
                "max_landmark": spec.max_landmark,
                **{f"training.{k}": v for k, v in config.model_dump().items()},
                **{f"param.{k}": v for k, v in chosen.params.items()},
            }
        )
        _log_artifacts(Path(tmp), scored, report, spec, prep, oof)
        info = log_model(
            fitted.model,
            check_rows=fitted.train_rows,
            input_example=_synthetic_example(fitted),
        )
        version = str(info.registered_model_version)
        set_alias(CHALLENGER, version)
        report["model_version"] = version
        report["run_id"] = run.info.run_id
        log_report_metrics(report)
        mlflow.log_dict(report, "report.json")
        mlflow.log_text(render_model_card(report, spec), "model_card.md")
        mlflow.set_tags({"model_version": version, "model_kind": chosen.kind})
    return TrainOutcome(report=report, run_id=run.info.run_id, model_version=version)


def _synthetic_example(fitted: _Fitted) -> pd.DataFrame:
    """One feature row of typical values, stored with the model as MLflow's input example.

    Numbers are the training rows' medians (rounded), categories their first level: the
    packaged model travels to wherever the registry is copied, and a real client's row
    there would be health data outside the clinic.
    """
    rows = fitted.train_rows.reindex(columns=fitted.spec.feature_columns())
    typical: dict[str, object] = {}
    for column in rows.columns:
        levels = fitted.spec.categorical_covariates.get(column)
        if levels is not None:
            typical[column] = levels[0] if levels else None
        else:
            median = pd.to_numeric(rows[column], errors="coerce").median()
            typical[column] = None if pd.isna(median) else round(float(median), 1)
    return fitted.model.example_input(pd.DataFrame([typical]))


def _read_truth(path: Path) -> pd.DataFrame:
    truth = read_table(path)
    missing = {"client_id", "session_number", "true_risk"} - set(truth.columns)
    if missing:
        raise TrainingDataError(f"{path}: truth file lacks column(s) {', '.join(sorted(missing))}")
    return pd.DataFrame(
        {
            "client_id": truth["client_id"].astype("string"),
            "session_number": pd.to_numeric(truth["session_number"]).astype("int64"),
            "true_risk": pd.to_numeric(truth["true_risk"]).astype(float),
        }
    )


def _log_artifacts(
    tmp: Path,
    scored: pd.DataFrame,
    report: dict[str, Any],
    spec: FeatureSpec,
    prep: _Prepared,
    oof: pd.DataFrame | None,
) -> None:
    plots = tmp / "plots"
    plots.mkdir()
    registered = f"registered ({report['model_kind']})"
    curves = {registered: (scored["label"], scored["risk"])}
    curves |= {name: (scored["label"], scored[name]) for name in ("logistic", "clinical_rule") if name in scored}
    if "true_risk" in scored:
        curves["true risk"] = (scored["label"], scored["true_risk"])
    plot_roc(curves, plots / "roc.png")
    plot_calibration(scored["label"], scored["risk"], plots / "calibration.png")
    plot_decision_curve(curves, plots / "decision_curve.png")
    by_landmark = {
        registered: report["test"]["by_landmark"],
        **{name: metrics["by_landmark"] for name, metrics in report["baselines"].items() if "by_landmark" in metrics},
    }
    cis = {name: {k: v.get("ci", {}) for k, v in metrics.items()} for name, metrics in by_landmark.items()}
    if "true_risk" in report:
        by_landmark["true risk"] = report["true_risk"]["by_landmark"]
    plot_by_landmark(by_landmark, "roc_auc", plots / "auc_by_landmark.png", cis=cis)
    mlflow.log_artifacts(str(plots), "plots")
    # The promotion gate re-scores these clients with the champion: "on the same test clients".
    evaluation = tmp / TEST_DATA_DIR
    evaluation.mkdir()
    # Small-data mode: the gate judges the out-of-fold risks, and scores the champion on every client.
    ids = prep.test_ids if prep.mode == "holdout" else prep.train_ids
    test = prep.sessions["client_id"].isin(ids)
    prep.sessions[test].to_parquet(evaluation / "test_sessions.parquet", index=False)
    prep.episodes[prep.episodes["client_id"].isin(ids)].to_parquet(evaluation / "test_episodes.parquet", index=False)
    if oof is not None:
        oof.to_parquet(evaluation / OOF_FILE, index=False)
    (evaluation / "feature_spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
    private_tree(evaluation)  # test clients' sessions: 0600 while they wait here for MLflow to copy them
    mlflow.log_artifacts(str(evaluation), TEST_DATA_DIR)
