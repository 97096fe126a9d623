"""The training job: validated files in, a calibrated model registered as the challenger out.

Nothing touches MLflow until the data have passed every check: bad data stop
the job before a run, a model or an alias exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dropout_risk.models.calibration import Method, ProbabilityCalibrator
from dropout_risk.models.registry import MODEL_NAME
from dropout_risk.training.baselines import BASELINES, BaselineRisk, baseline_risks
from dropout_risk.training.cv_estimate import cross_validate
from dropout_risk.training.evaluation.clinic_validation import leave_one_clinic_out_metrics, summarise
from dropout_risk.training.evaluation.holdout import evaluate_scores, subgroups, true_risk_comparison
from dropout_risk.training.evaluation.monotonicity import MonotonicityReport, monotonicity_violations
from dropout_risk.training.evaluation.stratified_within import stratified_within_landmark_auc
from dropout_risk.training.evaluation.within_landmark import WithinLandmarkAUC
from dropout_risk.training.jobs.fitted import Fitted, fit_chosen
from dropout_risk.training.jobs.prepare import (
    EvaluationMode,
    PreparedData,
    TrainingDataError,
    prepare,
    read_truth,
    with_truth,
)
from dropout_risk.training.jobs.run_logging import OOF_FILE, TEST_DATA_DIR, log_and_register
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import SplitKind

__all__ = ["OOF_FILE", "TEST_DATA_DIR", "EvaluationMode", "TrainOutcome", "TrainingDataError", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainOutcome:
    report: dict[str, Any]
    run_id: str
    model_version: str
    oof: pd.DataFrame | None = None  # small-data mode: every model's out-of-fold risks per client and session


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
    prep = prepare(sessions_path, episodes_path, settings, split, evaluation)
    truth = read_truth(truth_path) if truth_path else None

    say("building landmark features")
    fitted = fit_chosen(prep, settings, say)

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
        scored = with_truth(scored, truth)
        test = report["test"]
        report["true_risk"] = true_risk_comparison(scored, test, settings.evaluation.min_class_clients)

    say("logging to MLflow and registering")
    logged = log_and_register(fitted, scored, report, prep, settings, split, (sessions_path, episodes_path), oof)
    return TrainOutcome(report, logged.run_id, logged.model_version, oof)


def _cross_validated(
    fitted: Fitted, prep: PreparedData, settings: TrainingSettings, say: Progress
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


def _evaluation_section(prep: PreparedData, settings: TrainingSettings) -> dict[str, Any]:
    section: dict[str, Any] = {"mode": prep.mode, "reason": prep.mode_reason}
    if prep.mode == "cv":
        section |= {"folds": settings.evaluation.cv_folds, "repeats": settings.evaluation.cv_repeats}
    return section


def _monotonicity(fitted: Fitted, prep: PreparedData) -> MonotonicityReport:
    """How often making a held-out client's latest session worse lowers the chosen model's risk.

    In small-data mode there are no held-out clients: the registered model is checked on every client
    (monotonicity is a property of the model's function, not an estimate of performance).
    """
    ids = prep.test_ids if len(prep.test_ids) else prep.train_ids
    test = prep.sessions["client_id"].isin(ids)
    episodes = prep.episodes[prep.episodes["client_id"].isin(ids)]
    return monotonicity_violations(fitted.model, prep.sessions[test], episodes)


def _selection_section(fitted: Fitted, settings: TrainingSettings) -> dict[str, Any]:
    config, chosen = settings.training, fitted.selection.chosen
    return {
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
    }


def _score_test_rows(fitted: Fitted, calibration: Method) -> tuple[pd.DataFrame, list[BaselineRisk]]:
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
    fitted: Fitted,
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
        "selection": _selection_section(fitted, settings),
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
