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
from dropout_risk.training.settings import TrainingConfig

Progress = Callable[[str], None]


@dataclass
class CandidateResult:
    kind: str
    estimator: object  # unfitted template with the chosen parameters
    oof: np.ndarray  # out-of-fold uncalibrated probabilities, row-aligned with the training frame
    cv_auc: float
    fold_aucs: list[float]
    params: dict = field(default_factory=dict)


def out_of_fold(estimator, X: pd.DataFrame, y: np.ndarray, folds) -> tuple[np.ndarray, list[float]]:
    oof = np.full(len(X), np.nan)
    aucs = []
    for train_idx, valid_idx in folds:
        fitted = clone(estimator).fit(X.iloc[train_idx], y[train_idx])
        oof[valid_idx] = fitted.predict_proba(X.iloc[valid_idx])[:, 1]
        aucs.append(_auc(y[valid_idx], oof[valid_idx]))
    return oof, aucs


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
        return float(np.nanmean(aucs))

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


def select(results: dict[str, CandidateResult], candidates: Sequence[str], margin: float) -> CandidateResult:
    """Highest pooled out-of-fold AUC; anything more complex than logistic must beat it by ``margin``."""
    eligible = [results[k] for k in candidates]
    best = max(eligible, key=lambda r: r.cv_auc)
    logistic = results.get("logistic")
    if (
        logistic is not None
        and "logistic" in candidates
        and best.kind != "logistic"
        and best.cv_auc < logistic.cv_auc + margin
    ):
        return logistic
    return best


def fit_calibrated(
    result: CandidateResult, X: pd.DataFrame, y: np.ndarray, method: Method
) -> tuple[Pipeline, ProbabilityCalibrator]:
    """Refit on all training rows; the calibrator learns from the out-of-fold predictions only."""
    calibrator = ProbabilityCalibrator(method).fit(result.oof, y)
    return clone(result.estimator).fit(X, y), calibrator
