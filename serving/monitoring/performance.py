"""Realised performance of served risks on ended episodes (``models.realised``), as the report's ``Performance``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dropout_risk.models.calibration_error import expected_calibration_error
from dropout_risk.models.realised import (
    calibration_line,
    observed_expected,
    within_landmark_auc,
)
from dropout_risk.serving.monitoring.report import CalibrationBin, Performance, PerformanceGroup
from dropout_risk.serving.settings import MonitoringConfig

N_BINS = 10


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def calibration_bins(y: np.ndarray, p: np.ndarray) -> list[CalibrationBin]:
    """Served risk against the observed dropout rate in ten equal-width risk bins (the plot's points)."""
    bins = np.minimum((p * N_BINS).astype(int), N_BINS - 1)
    rows = np.bincount(bins, minlength=N_BINS)
    risk = np.bincount(bins, weights=p, minlength=N_BINS)
    events = np.bincount(bins, weights=y, minlength=N_BINS)
    return [
        CalibrationBin(
            low=b / N_BINS,
            high=(b + 1) / N_BINS,
            rows=int(rows[b]),
            mean_risk=float(risk[b] / rows[b]),
            observed_rate=float(events[b] / rows[b]),
        )
        for b in range(N_BINS)
        if rows[b]
    ]


def performance(rows: pd.DataFrame, config: MonitoringConfig) -> Performance:
    """The figures of one group of served rows (``data.served_rows``'s columns)."""
    y, p = rows["dropout"].to_numpy(dtype=float), rows["probability"].to_numpy(dtype=float)
    client, landmark = rows["client"].to_numpy(), rows["landmark"].to_numpy()
    ratio = observed_expected(y, p, client, config.confidence)
    line = calibration_line(y, p)
    auc = within_landmark_auc(y, p, landmark, config.min_class, config.confidence)
    first = rows.drop_duplicates("client")
    return Performance(
        episodes=len(first),
        dropouts=int(first["dropout"].sum()),
        rows=len(rows),
        observed=ratio.observed,
        expected=ratio.expected,
        oe=_finite(ratio.ratio),
        oe_ci=[_finite(v) for v in ratio.ci],
        calibration_slope=_finite(line.slope),
        calibration_intercept=_finite(line.intercept),
        ece=_finite(expected_calibration_error(y, p)),
        within_landmark_auc=_finite(auc.auc),
        within_landmark_auc_ci=[_finite(v) for v in auc.ci],
        auc_landmarks=list(auc.landmarks),
        calibration_bins=calibration_bins(y, p),
    )


def by_version_month(rows: pd.DataFrame, config: MonitoringConfig) -> list[PerformanceGroup]:
    return [
        PerformanceGroup(model_version=str(version), month=str(month), performance=performance(group, config))
        for (version, month), group in rows.groupby(["model_version", "month"], sort=True)
    ]
