"""The baselines every model is reported beside: what it must beat to be worth a clinic's trust.

- ``landmark_only``: the training dropout rate at each session number. Its pooled AUC is the
  session-number effect alone; within a session it is 0.5 by construction.
- ``intake_only``: a logistic model on the session number and the outcome scores at intake: what
  the first session already tells, without following the client.
- ``clinical_rule``: the count of PCOMS / OQ rules that fire (``models.clinical_rule``); not
  applicable, with the reason, when none of its rules can fire on these data.
- ``logistic``: the logistic candidate on the model's own features (``training.fitting``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dropout_risk.features.spec import LANDMARK, FeatureSpec
from dropout_risk.models.calibration import Method
from dropout_risk.models.clinical_rule import ClinicalRuleClassifier
from dropout_risk.models.estimators import make_candidate
from dropout_risk.training.fitting import CandidateResult, calibrated_risk, fit_calibrated, landmark_of

BASELINES = ("landmark_only", "intake_only", "clinical_rule", "logistic")


@dataclass(frozen=True)
class BaselineRisk:
    """A baseline's calibrated risks on the test rows, or why it does not apply to these data."""

    name: str
    risk: np.ndarray | None
    not_applicable: str | None = None


def baseline_risks(
    train_rows: pd.DataFrame,
    test_rows: pd.DataFrame,
    spec: FeatureSpec,
    logistic: CandidateResult,
    folds: list,
    calibration: Method,
) -> list[BaselineRisk]:
    """Every baseline of ``BASELINES``, fitted on the training rows, scored on the test rows."""
    y = train_rows["label"].to_numpy(dtype=int)
    estimator, calibrator = fit_calibrated(logistic, train_rows, y, calibration)
    raw = estimator.predict_proba(test_rows)[:, 1]
    logistic_risk = BaselineRisk("logistic", calibrator.transform(raw, landmark_of(test_rows)))
    return [*reference_baselines(train_rows, test_rows, spec, folds, calibration), logistic_risk]


def reference_baselines(
    train_rows: pd.DataFrame, test_rows: pd.DataFrame, spec: FeatureSpec, folds: list, calibration: Method
) -> list[BaselineRisk]:
    """The baselines that are not candidates: ``landmark_only``, ``intake_only``, ``clinical_rule``."""
    y = train_rows["label"].to_numpy(dtype=int)
    return [
        BaselineRisk("landmark_only", landmark_only(train_rows, y, test_rows)),
        _intake_only(train_rows, y, test_rows, spec, folds, calibration),
        _clinical_rule(train_rows, y, test_rows, spec),
    ]


def landmark_only(train_rows: pd.DataFrame, y: np.ndarray, test_rows: pd.DataFrame) -> np.ndarray:
    """The training dropout rate at each row's session (the overall rate for a session training lacks)."""
    rates = pd.Series(y, index=train_rows[LANDMARK].to_numpy()).groupby(level=0).mean()
    return test_rows[LANDMARK].map(rates).fillna(float(y.mean())).to_numpy(dtype=float)


def _intake_only(
    train_rows: pd.DataFrame,
    y: np.ndarray,
    test_rows: pd.DataFrame,
    spec: FeatureSpec,
    folds: list,
    calibration: Method,
) -> BaselineRisk:
    intake = [f"{i.key}_intake" for i in spec.outcome_instruments]
    if not intake:
        return BaselineRisk("intake_only", None, "no outcome instrument has scores in these data")
    template = make_candidate("logistic", train_rows, [LANDMARK, *intake])
    return BaselineRisk("intake_only", calibrated_risk(template, train_rows, y, folds, calibration, test_rows))


def _clinical_rule(train_rows: pd.DataFrame, y: np.ndarray, test_rows: pd.DataFrame, spec: FeatureSpec) -> BaselineRisk:
    rule = ClinicalRuleClassifier(spec.to_dict()).fit(train_rows, y)
    if np.unique(rule.decision_function(train_rows)).size < 2:
        missing = [
            what
            for what, absent in (
                ("no alliance instrument", not spec.alliance_instruments),
                (
                    "no reliable-change amount for any outcome instrument",
                    all(i.reliable_change is None for i in spec.outcome_instruments),
                ),
                ("no missed appointments recorded", train_rows["missed_total"].fillna(0).eq(0).all()),
            )
            if absent
        ]
        why = "; ".join(missing) or "none of its rules fired on the training clients"
        return BaselineRisk("clinical_rule", None, f"its rules cannot fire on these data ({why})")
    return BaselineRisk("clinical_rule", rule.predict_proba(test_rows)[:, 1])
