"""Fit a clinic's recalibration of the served version on its ended episodes, judged out of sample.

The update is of the model's calibrated log-odds, logit p' = a + b * logit p, fitted on the clinic's
ended episodes served by that version (one row per episode and landmark session; risks served
through an earlier recalibration are taken back to the model's own first). ``intercept`` fits a
with b = 1 and needs ``monitoring.min_ended`` ended episodes; ``logistic`` fits both and needs
``monitoring.min_ended_logistic``. Each needs ``monitoring.min_class`` episodes of each outcome.

Before/after figures come from ``FOLDS`` client folds: each fold's risks are updated by the fit on
the other folds, so "after" is what the update does to episodes it did not learn from. O/E has its
client-clustered interval; slope and ECE a client bootstrap (``RESAMPLES``) interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy.special import logit
from sqlalchemy import select
from sqlalchemy.orm import Session

from dropout_risk.models.calibration_error import expected_calibration_error
from dropout_risk.models.local_update import update_probability
from dropout_risk.models.realised import (
    calibration_line,
    intercept_shift,
    logistic_update,
    observed_expected,
)
from dropout_risk.serving.monitoring.data import served_rows
from dropout_risk.serving.settings import MonitoringConfig
from dropout_risk.serving.tables import Recalibration

FOLDS, RESAMPLES, SEED, EPS = 5, 200, 0, 1e-12
Method = str  # "intercept" | "logistic"


class RecalibrationRefused(ValueError):
    pass


class Figures(BaseModel):
    oe: float | None
    oe_ci: list[float | None]
    slope: float | None
    slope_ci: list[float | None]
    ece: float | None
    ece_ci: list[float | None]


class RecalibrationPlan(BaseModel):
    clinic: str
    model_version: str
    method: str
    intercept: float
    slope: float
    episodes: int
    dropouts: int
    folds: int
    before: Figures
    after: Figures


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def fit(y: np.ndarray, x: np.ndarray, method: Method) -> tuple[float, float]:
    """(intercept, slope) of the update of log-odds ``x`` to outcomes ``y``."""
    return logistic_update(y, x) if method == "logistic" else (intercept_shift(y, x), 1.0)


def model_logodds(db: Session, rows: pd.DataFrame) -> np.ndarray:
    """Each served risk's log-odds before any recalibration it went through."""
    x = logit(np.clip(rows["probability"].to_numpy(dtype=float), EPS, 1 - EPS))
    used = [int(v) for v in rows["recalibration"].dropna().unique()]
    if used:
        updates = {
            r.id: (r.intercept, r.slope) for r in db.scalars(select(Recalibration).where(Recalibration.id.in_(used)))
        }
        ids = rows["recalibration"].to_numpy(dtype=float, na_value=np.nan)
        for rid, (a, b) in updates.items():
            x = np.where(ids == rid, (x - a) / b, x)
    return x


def _figures(y: np.ndarray, p: np.ndarray, client: np.ndarray, confidence: float) -> Figures:
    ratio = observed_expected(y, p, client, confidence)
    codes, members = np.unique(client, return_inverse=True)
    rows_of = [np.flatnonzero(members == c) for c in range(codes.size)]
    rng = np.random.default_rng(SEED)
    slopes, eces = [], []
    for _ in range(RESAMPLES):
        take = np.concatenate([rows_of[c] for c in rng.integers(0, codes.size, codes.size)])
        slopes.append(calibration_line(y[take], p[take]).slope)
        eces.append(expected_calibration_error(y[take], p[take]))
    tail = (1 - confidence) / 2 * 100

    def interval(values: list[float]) -> list[float | None]:
        finite = np.asarray(values)[np.isfinite(values)]
        return (
            [_finite(np.percentile(finite, tail)), _finite(np.percentile(finite, 100 - tail))]
            if finite.size
            else [None, None]
        )

    return Figures(
        oe=_finite(ratio.ratio),
        oe_ci=[_finite(v) for v in ratio.ci],
        slope=_finite(calibration_line(y, p).slope),
        slope_ci=interval(slopes),
        ece=_finite(expected_calibration_error(y, p)),
        ece_ci=interval(eces),
    )


def _check_enough(rows: pd.DataFrame, method: Method, config: MonitoringConfig) -> None:
    episodes = rows.drop_duplicates("client")
    needed = config.min_ended_logistic if method == "logistic" else config.min_ended
    dropouts = int(episodes["dropout"].sum())
    if len(episodes) < needed:
        setting = "min_ended_logistic" if method == "logistic" else "min_ended"
        raise RecalibrationRefused(
            f"{len(episodes)} ended episodes served by this model version: --method {method} needs at least "
            f"{needed} (monitoring.{setting})"
        )
    if min(dropouts, len(episodes) - dropouts) < config.min_class:
        raise RecalibrationRefused(f"fewer than {config.min_class} episodes of one outcome (monitoring.min_class)")


def plan(
    db: Session, clinic_id: int, clinic: str, version: str, method: Method, config: MonitoringConfig
) -> RecalibrationPlan:
    """The update fitted on all the clinic's ended episodes, and its out-of-fold before/after figures."""
    rows = served_rows(db, [clinic_id], None)
    rows = rows[rows["model_version"] == version].reset_index(drop=True)
    _check_enough(rows, method, config)
    y, x, client = rows["dropout"].to_numpy(dtype=float), model_logodds(db, rows), rows["client"].to_numpy()
    fold = (
        np.random.default_rng(SEED).permutation(np.unique(client).size)[np.unique(client, return_inverse=True)[1]]
        % FOLDS
    )
    after = np.empty_like(x)
    for k in range(FOLDS):
        a, b = fit(y[fold != k], x[fold != k], method)
        after[fold == k] = update_probability(1 / (1 + np.exp(-x[fold == k])), a, b)
    intercept, slope = fit(y, x, method)
    if not (math.isfinite(intercept) and math.isfinite(slope)):
        raise RecalibrationRefused(f"--method {method} has no finite fit on these episodes (outcomes separated)")
    return RecalibrationPlan(
        clinic=clinic,
        model_version=version,
        method=method,
        intercept=intercept,
        slope=slope,
        episodes=int(np.unique(client).size),
        dropouts=int(rows.drop_duplicates("client")["dropout"].sum()),
        folds=FOLDS,
        before=_figures(y, 1 / (1 + np.exp(-x)), client, config.confidence),
        after=_figures(y, after, client, config.confidence),
    )


def as_row(clinic_id: int, fitted: RecalibrationPlan, by: str, reason: str) -> Recalibration:
    """The ``recalibrations`` row that stores ``fitted``, with who, why and its before/after figures."""
    return Recalibration(
        clinic_id=clinic_id,
        model_version=fitted.model_version,
        method=fitted.method,
        intercept=fitted.intercept,
        slope=fitted.slope,
        episodes=fitted.episodes,
        evaluation=fitted.model_dump(mode="json"),
        created_by=by,
        reason=reason,
    )
