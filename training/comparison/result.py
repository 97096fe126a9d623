"""What a comparison found, typed; ``to_json`` gives the report file's keys (a contract: keep them).

NaN stays NaN in these objects; ``to_json`` turns it into null (strict JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_risk.training.evaluation.within_landmark import WithinLandmarkAUC

REPORT_KIND = "feature_set_comparison"
CONFIDENCE = 0.95
ALPHA = 0.05  # two-sided, matching the 95% intervals
TRAJECTORIES = "refitted on each outer fold's training clients"
MARKING_RULE = (
    "within-landmark AUC difference: paired client-bootstrap 95% CI excludes 0, Holm-adjusted p < 0.05, "
    "and the refit-aware corrected resampled t-test's 95% CI excludes 0 on the same side"
)
HYPERPARAMETERS = "models.estimators defaults, the same for every set (no tuning)"

Interval = tuple[float, float]
JSON = dict[str, Any]


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass(frozen=True)
class Metrics:
    """One risk column's metrics on some rows (pooled or one landmark), with 95% client-bootstrap CIs."""

    roc_auc: float
    roc_auc_ci: Interval
    pr_auc: float
    pr_auc_ci: Interval
    brier: float
    brier_ci: Interval
    calibration_slope: float
    calibration_slope_ci: Interval
    calibration_intercept: float  # no CI: after recalibration it sits at about 0 by construction
    ece: float
    ece_ci: Interval
    n_rows: int
    n_clients: int
    n_events: int
    prevalence: float

    def to_json(self) -> JSON:
        return {
            "roc_auc": self.roc_auc,
            "roc_auc_ci": list(self.roc_auc_ci),
            "pr_auc": self.pr_auc,
            "pr_auc_ci": list(self.pr_auc_ci),
            "brier": self.brier,
            "brier_ci": list(self.brier_ci),
            "calibration_slope": self.calibration_slope,
            "calibration_slope_ci": list(self.calibration_slope_ci),
            "calibration_intercept": self.calibration_intercept,
            "ece": self.ece,
            "ece_ci": list(self.ece_ci),
            "n_rows": self.n_rows,
            "n_clients": self.n_clients,
            "n_events": self.n_events,
            "prevalence": self.prevalence,
        }


@dataclass(frozen=True)
class SetMetrics:
    """Pooled and per-landmark metrics of one set's out-of-fold risks."""

    pooled: Metrics  # includes the session-number effect: later landmarks hold fewer dropouts
    by_landmark: dict[str, Metrics]  # landmark key ("1", "2", ...) -> metrics
    informative_from: int | None  # first evaluable landmark from which the AUC's lower bound stays above 0.5
    within_landmark: WithinLandmarkAUC  # the lead figure: mean per-landmark AUC over evaluable landmarks


@dataclass(frozen=True)
class FeatureSetResult:
    name: str
    groups: tuple[str, ...]
    features: tuple[str, ...]
    columns: tuple[str, ...]
    fold_digest: str  # the fold assignment this set was fitted on
    metrics: SetMetrics
    run_id: str | None = None  # its nested MLflow run, once logged

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def to_json(self) -> JSON:
        out = {
            "groups": list(self.groups),
            "features": list(self.features),
            "columns": list(self.columns),
            "n_features": self.n_features,
            "fold_digest": self.fold_digest,
            **self.metrics.within_landmark.to_json(),
            **self.metrics.pooled.to_json(),
            "by_landmark": {k: m.to_json() for k, m in self.metrics.by_landmark.items()},
            "informative_from": self.metrics.informative_from,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out


@dataclass(frozen=True)
class CvTest:
    """Nadeau & Bengio's corrected resampled t-test on per-fold AUC differences (refit-aware)."""

    mean_delta_auc: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    df: int
    n_folds: int

    def to_json(self) -> JSON:
        return {
            "mean_delta_auc": self.mean_delta_auc,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "df": self.df,
            "n_folds": self.n_folds,
        }


@dataclass(frozen=True)
class WithinLandmarkDelta:
    """Within-landmark AUC(a) - AUC(b): the difference a pair's mark rests on."""

    delta_auc: float
    ci: Interval  # paired client bootstrap, percentile
    p_value: float
    p_value_holm: float  # over all pairs
    cv_test: CvTest  # refit-aware: on the per-fold within-landmark AUC differences
    landmarks: tuple[int, ...]  # the evaluable landmarks averaged over

    @property
    def ci_excludes_zero(self) -> bool:
        lo, hi = self.ci
        return bool(lo > 0 or hi < 0)

    @property
    def cv_test_agrees(self) -> bool:
        """The refit-aware CI excludes 0 on the same side as the bootstrap's estimate."""
        lo, hi = self.cv_test.ci
        if lo is None or hi is None or not math.isfinite(self.delta_auc):
            return False
        return bool((lo > 0 and self.delta_auc > 0) or (hi < 0 and self.delta_auc < 0))

    @property
    def marked(self) -> bool:
        return self.ci_excludes_zero and self.p_value_holm < ALPHA and self.cv_test_agrees

    def to_json(self) -> JSON:
        return {
            "delta_auc": self.delta_auc,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "p_value_holm": self.p_value_holm,
            "ci_excludes_zero": self.ci_excludes_zero,
            "cv_test": self.cv_test.to_json(),
            "cv_test_agrees": self.cv_test_agrees,
            "landmarks": list(self.landmarks),
        }


@dataclass(frozen=True)
class LandmarkDelta:
    delta_auc: float
    ci: Interval
    p_value: float

    def to_json(self) -> JSON:
        return {"delta_auc": self.delta_auc, "ci": list(self.ci), "p_value": self.p_value}


@dataclass(frozen=True)
class PairResult:
    """AUC(a) - AUC(b) on the same resampled clients: within landmarks (the mark) and pooled.

    The pooled fields (``delta_auc``, ``ci``, ``p_value``, ``p_value_holm``, ``cv_test``) include
    the session-number effect and are descriptive; ``marked`` is ``within_landmark.marked``: its
    paired bootstrap CI excludes 0, its Holm-adjusted p is below ALPHA, and the refit-aware
    ``cv_test`` on the per-fold within-landmark differences agrees.
    """

    a: str
    b: str
    delta_auc: float
    ci: Interval
    p_value: float
    ci_excludes_zero: bool  # the pooled, unadjusted verdict
    n_resamples: int
    cv_test: CvTest
    by_landmark: dict[str, LandmarkDelta]  # descriptive, unadjusted
    p_value_holm: float
    within_landmark: WithinLandmarkDelta

    @property
    def marked(self) -> bool:
        return self.within_landmark.marked

    @property
    def better(self) -> str | None:
        """The marked pair's better set."""
        if not self.marked:
            return None
        return self.a if self.within_landmark.delta_auc > 0 else self.b

    def to_json(self) -> JSON:
        return {
            "a": self.a,
            "b": self.b,
            "delta_auc": self.delta_auc,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "ci_excludes_zero": self.ci_excludes_zero,
            "n_resamples": self.n_resamples,
            "cv_test": self.cv_test.to_json(),
            "by_landmark": {k: d.to_json() for k, d in self.by_landmark.items()},
            "p_value_holm": self.p_value_holm,
            "within_landmark": self.within_landmark.to_json(),
            "marked": self.marked,
            "better": self.better,
        }


@dataclass(frozen=True)
class Design:
    folds: int
    repeats: int
    seed: int
    landmarks: tuple[int, ...]
    fold_digest: str
    fold_clients: list[int]  # clients per fold, first repeat
    calibration: str  # the calibrator, or "none"
    bootstrap_resamples: int
    pair_resamples: int
    min_class_clients: int  # evaluation.min_class_clients: which landmarks the within-landmark AUC covers

    def to_json(self) -> JSON:
        return {
            "folds": self.folds,
            "repeats": self.repeats,
            "seed": self.seed,
            "landmarks": list(self.landmarks),
            "fold_digest": self.fold_digest,
            "fold_clients": list(self.fold_clients),
            "calibration": self.calibration,
            "trajectories": TRAJECTORIES,
            "hyperparameters": HYPERPARAMETERS,
            "bootstrap_resamples": self.bootstrap_resamples,
            "pair_resamples": self.pair_resamples,
            "confidence": CONFIDENCE,
            "multiple_comparisons": "holm",
            "alpha": ALPHA,
            "min_class_clients": self.min_class_clients,
            "marking_rule": MARKING_RULE,
        }


@dataclass(frozen=True)
class DataSummary:
    clients: int  # ended episodes
    ongoing_excluded: int
    sessions: int
    clients_evaluated: int  # clients with a landmark row
    rows: int
    dropout_rate: float
    instruments: list[str]
    covariates: list[str]
    sessions_digest: str | None = None  # once logged to MLflow
    episodes_digest: str | None = None

    def to_json(self) -> JSON:
        out: JSON = {
            "clients": self.clients,
            "ongoing_excluded": self.ongoing_excluded,
            "sessions": self.sessions,
            "clients_evaluated": self.clients_evaluated,
            "rows": self.rows,
            "dropout_rate": self.dropout_rate,
            "instruments": list(self.instruments),
            "covariates": list(self.covariates),
        }
        if self.sessions_digest is not None:
            out["sessions_digest"], out["episodes_digest"] = self.sessions_digest, self.episodes_digest
        return out


@dataclass(frozen=True)
class CompareResult:
    """The whole comparison: design, data, one result per set (in the order asked), every pair."""

    model: str
    design: Design
    data: DataSummary
    feature_sets: dict[str, FeatureSetResult]
    pairs: list[PairResult]
    warnings: list[str]
    model_reason: str = ""  # why this model: asked for, configured, or the small-data default
    run_id: str | None = None  # the MLflow parent run
    elapsed_seconds: float | None = None

    def to_json(self) -> JSON:
        """The JSON report (strict JSON: NaN as null)."""
        out: JSON = {
            "kind": REPORT_KIND,
            "run_id": self.run_id,
            "model": self.model,
            "model_reason": self.model_reason,
            "design": self.design.to_json(),
            "data": self.data.to_json(),
            "feature_sets": {name: s.to_json() for name, s in self.feature_sets.items()},
            "pairs": [p.to_json() for p in self.pairs],
            "warnings": list(self.warnings),
        }
        if self.elapsed_seconds is not None:
            out["elapsed_seconds"] = self.elapsed_seconds
        return json_safe(out)
