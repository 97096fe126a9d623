"""Leave-one-clinic-out: would the recipe work at a clinic it has never seen?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from dropout_risk.models.calibration import ProbabilityCalibrator
from dropout_risk.training.evaluation.metrics import binary_metrics
from dropout_risk.training.fitting import CandidateResult, landmark_of, out_of_fold
from dropout_risk.training.settings import TrainingConfig
from dropout_risk.training.splits import grouped_folds, leave_one_clinic_out

INNER_FOLDS = 3
KEPT = ("roc_auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece", "prevalence", "n_rows")


def leave_one_clinic_out_metrics(features: pd.DataFrame, recipe: CandidateResult, config: TrainingConfig) -> dict:
    """Per held-out clinic: the recipe refitted and recalibrated on the other clinics, scored on this one.

    Clinics whose held-out rows have one outcome only report NaN AUCs rather than being dropped.
    """
    if "clinic_id" not in features or features["clinic_id"].notna().sum() == 0:
        return {}
    y = features["label"].to_numpy(dtype=int)
    out = {}
    for clinic, train_idx, test_idx in leave_one_clinic_out(features):
        train = features.iloc[train_idx].reset_index(drop=True)
        inner = grouped_folds(train, folds=INNER_FOLDS, seed=config.seed)
        oof, _ = out_of_fold(recipe.estimator, train, y[train_idx], inner)
        calibrator = ProbabilityCalibrator(config.calibration).fit(oof, y[train_idx], landmark_of(train))
        fitted = clone(recipe.estimator).fit(train, y[train_idx])
        test = features.iloc[test_idx]
        risk = calibrator.transform(fitted.predict_proba(test)[:, 1], landmark_of(test))
        metrics = binary_metrics(y[test_idx], risk)
        out[clinic] = {k: metrics[k] for k in KEPT} | {"n_clients": int(test["client_id"].nunique())}
    return out


def summarise(per_clinic: dict) -> dict:
    aucs = np.array([m["roc_auc"] for m in per_clinic.values()], dtype=float)
    return {
        "clinics": len(per_clinic),
        "roc_auc_min": float(np.nanmin(aucs)) if len(aucs) else float("nan"),
        "roc_auc_median": float(np.nanmedian(aucs)) if len(aucs) else float("nan"),
    }
