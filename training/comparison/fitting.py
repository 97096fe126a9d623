"""Out-of-fold risks of every feature set on the shared folds, recalibrated fold by fold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from dropout_risk.models.calibration import Method, ProbabilityCalibrator
from dropout_risk.models.estimators import make_candidate
from dropout_risk.training.compare_settings import CompareSettings
from dropout_risk.training.comparison.feature_sets import FeatureSet
from dropout_risk.training.comparison.folds import Fold

Progress = Callable[[str], None]
MODELS = ("lightgbm", "logistic")


def _model_params(kind: str, settings: CompareSettings, repeat: int) -> dict[str, Any]:
    if kind == "logistic":
        return {"C": settings.training.logistic_c}
    return {"random_state": settings.compare.seed + repeat}


def _fit_predict(kind: str, params: dict[str, Any], feature_set: FeatureSet, fold: Fold) -> np.ndarray:
    """Held-out (uncalibrated) risks of one set on one fold, from a model fitted on the training fold."""
    frame = fold.frame
    y = frame["label"].to_numpy(dtype=int)
    candidate = make_candidate(kind, frame, list(feature_set.columns), feature_set.directions, **params)
    fitted = candidate.fit(frame.iloc[fold.train], y[fold.train])
    return fitted.predict_proba(frame.iloc[fold.valid])[:, 1]


def calibrate_out_of_fold(raw: np.ndarray, folds: list[Fold], y: np.ndarray, method: Method) -> np.ndarray:
    """Recalibrate each held-out fold with a calibrator fitted on its training rows' OOF predictions.

    ``raw``: sets x repeats x rows of out-of-fold probabilities. The calibrator for fold f of
    repeat r learns from the rows outside f (their predictions came from models that never
    saw them), so no label is used to calibrate its own prediction.

    One pooled Platt fit, not train's intercept per landmark: intercepts fitted per set and fold
    would reorder the sessions differently for each set, and the paired pooled-AUC test would
    then find differences between sets that are calibration noise (with neither score driving
    dropout, 1,500 clients: Holm p 0.006 with per-landmark intercepts). The within-session
    AUC, compare's lead figure, is the same either way.
    """
    out = np.empty_like(raw)
    labels = y.astype(int)
    for s in range(raw.shape[0]):
        for fold in folds:
            calibrator = ProbabilityCalibrator(method).fit(raw[s, fold.repeat, fold.train], labels[fold.train])
            out[s, fold.repeat, fold.valid] = calibrator.transform(raw[s, fold.repeat, fold.valid])
    return out


def out_of_fold_risks(
    sets: list[FeatureSet],
    folds: list[Fold],
    kind: str,
    settings: CompareSettings,
    n_rows: int,
    repeats: int,
    say: Progress,
) -> tuple[np.ndarray, np.ndarray]:
    """(risks: sets x repeats x rows; assignment: sets x repeats x rows, the fold each row was held out in)."""
    risks = np.full((len(sets), repeats, n_rows), np.nan)
    assignment = np.full((len(sets), repeats, n_rows), -1, dtype=np.int64)
    tasks = [(s, f) for f in range(len(folds)) for s in range(len(sets))]

    def run(s: int, f: int) -> tuple[int, int, np.ndarray]:
        fold = folds[f]
        return s, f, _fit_predict(kind, _model_params(kind, settings, fold.repeat), sets[s], fold)

    runner = Parallel(n_jobs=settings.compare.n_jobs, prefer="threads", return_as="generator_unordered")
    n_folds = len(folds) // repeats
    for done, (s, f, risk) in enumerate(runner(delayed(run)(s, f) for s, f in tasks), start=1):
        fold = folds[f]
        risks[s, fold.repeat, fold.valid] = risk
        assignment[s, fold.repeat, fold.valid] = fold.fold
        say(
            f"fitted {done}/{len(tasks)}: {sets[s].name} (repeat {fold.repeat + 1}/{repeats}, "
            f"fold {fold.fold + 1}/{n_folds})"
        )
    if np.isnan(risks).any():
        raise RuntimeError("some rows got no out-of-fold prediction")
    return risks, assignment
