"""Fit the candidates on client-grouped folds, pick one, calibrate it on held-out folds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from dropout_risk.models.calibration import Method, ProbabilityCalibrator
from dropout_risk.models.estimators import make_candidate
from dropout_risk.training.evaluation.within_landmark import within_landmark_auc
from dropout_risk.training.settings import TrainingConfig

Progress = Callable[[str], None]


# A validation fold holds a fifth of the training clients: fewer per class and session than a test set,
# so a landmark enters a fold's within-session AUC with this many clients of each class.
FOLD_MIN_CLASS_CLIENTS = 5


@dataclass
class CandidateResult:
    kind: str
    estimator: object  # unfitted template with the chosen parameters
    oof: np.ndarray  # out-of-fold uncalibrated probabilities, row-aligned with the training frame
    cv_auc: float  # pooled out-of-fold AUC (includes the session-number effect)
    fold_aucs: list[float]  # within-session AUC of each validation fold, in fold order
    params: dict = field(default_factory=dict)

    @property
    def cv_within(self) -> float:
        """Mean within-session AUC over the folds: what selection compares."""
        return float(np.nanmean(self.fold_aucs)) if np.isfinite(self.fold_aucs).any() else float("nan")


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and the rule's figures (for the report)."""

    chosen: CandidateResult
    rule: str
    difference: float  # booster minus logistic, mean over folds of the within-session AUC (NaN: not compared)
    standard_error: float


def out_of_fold(estimator, X: pd.DataFrame, y: np.ndarray, folds) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold probabilities and each validation fold's within-session AUC."""
    oof = np.full(len(X), np.nan)
    aucs = []
    for train_idx, valid_idx in folds:
        fitted = clone(estimator).fit(X.iloc[train_idx], y[train_idx])
        oof[valid_idx] = fitted.predict_proba(X.iloc[valid_idx])[:, 1]
        aucs.append(_fold_within(X.iloc[valid_idx], y[valid_idx], oof[valid_idx]))
    return oof, aucs


def _fold_within(rows: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> float:
    frame = pd.DataFrame({"client_id": rows["client_id"].to_numpy(), "landmark": rows["landmark"].to_numpy()})
    frame = frame.assign(label=y.astype(float), risk=p)
    return within_landmark_auc(frame, min_class_clients=FOLD_MIN_CLASS_CLIENTS, n_resamples=1).auc


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _tune_lightgbm(X, y, columns, directions, folds, config: TrainingConfig) -> dict:
    """A small optuna search on the same grouped folds; returns the best parameters."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 31),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 200, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 100, 600, step=50),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10, log=True),
        }
        _, aucs = out_of_fold(make_candidate("lightgbm", X, columns, directions, **params), X, y, folds)
        return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else 0.5

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, n_trials=config.tuning_trials)
    return dict(study.best_params)


def fit_candidates(
    X: pd.DataFrame,
    y: np.ndarray,
    columns: Sequence[str],
    folds,
    config: TrainingConfig,
    progress: Progress | None = None,
    directions: Mapping[str, int] | None = None,
) -> dict[str, CandidateResult]:
    """Every candidate cross-validated on ``columns``, its effects kept to ``directions`` (column -> +1/-1/0)."""
    results: dict[str, CandidateResult] = {}
    for kind in dict.fromkeys(["logistic", *config.candidates]):  # logistic is always the baseline
        if progress:
            progress(f"cross-validating {kind}")
        params = {"C": config.logistic_c} if kind == "logistic" else {}
        if kind == "lightgbm" and config.tuning_trials:
            params = _tune_lightgbm(X, y, columns, directions, folds, config)
        estimator = make_candidate(kind, X, columns, directions, **params)
        oof, aucs = out_of_fold(estimator, X, y, folds)
        results[kind] = CandidateResult(kind, estimator, oof, _auc(y, oof), aucs, params)
    return results


def select(results: dict[str, CandidateResult], candidates: Sequence[str], margin: float) -> Selection:
    """Logistic, unless a booster beats its within-session CV AUC by more than ``margin`` plus one standard
    error of the paired fold differences (the simpler model generalises better on small clinic data)."""
    eligible = [results[k] for k in candidates]
    others = [r for r in eligible if r.kind != "logistic"]
    logistic = results.get("logistic")
    if logistic is None or "logistic" not in candidates or not others:
        best = max(eligible, key=_within_or_worst)
        return Selection(best, f"highest within-session CV AUC: {best.kind}", float("nan"), float("nan"))
    booster = max(others, key=_within_or_worst)
    differences = np.asarray(booster.fold_aucs) - np.asarray(logistic.fold_aucs)
    differences = differences[np.isfinite(differences)]
    mean = float(differences.mean()) if differences.size else float("nan")
    se = float(differences.std(ddof=1) / np.sqrt(differences.size)) if differences.size > 1 else float("nan")
    if mean > margin + se:  # NaN compares False: no evidence, the simpler model ships
        return Selection(booster, f"{booster.kind} beats logistic by {mean:.4f} > {margin} + 1 SE ({se:.4f})", mean, se)
    rule = f"{booster.kind} - logistic = {mean:.4f}, not more than {margin} + 1 SE ({se:.4f}): logistic ships"
    return Selection(logistic, rule, mean, se)


def _within_or_worst(result: CandidateResult) -> float:
    return -np.inf if np.isnan(result.cv_within) else result.cv_within


def fit_calibrated(
    result: CandidateResult, X: pd.DataFrame, y: np.ndarray, method: Method
) -> tuple[Pipeline, ProbabilityCalibrator]:
    """Refit on all training rows; the calibrator learns from the out-of-fold predictions only (per landmark)."""
    calibrator = ProbabilityCalibrator(method).fit(result.oof, y, landmark_of(X))
    return clone(result.estimator).fit(X, y), calibrator


def calibrated_risk(template, X: pd.DataFrame, y: np.ndarray, folds, method: Method, rows: pd.DataFrame) -> np.ndarray:
    """Risks of ``rows`` from ``template`` refitted on ``X``, calibrated on its out-of-fold risks over ``folds``."""
    oof, _ = out_of_fold(template, X, y, folds)
    calibrator = ProbabilityCalibrator(method).fit(oof, y, landmark_of(X))
    return calibrator.transform(clone(template).fit(X, y).predict_proba(rows)[:, 1], landmark_of(rows))


def landmark_of(rows: pd.DataFrame) -> np.ndarray:
    """Each landmark row's session number, as the calibrator takes it."""
    return pd.to_numeric(rows["landmark"]).to_numpy(dtype=float)
