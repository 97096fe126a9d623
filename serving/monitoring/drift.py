"""A clinic's recent sessions against the served model's reference profile (``models.drift``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dropout_risk.models.drift import distribution_drift, missing_drift
from dropout_risk.models.profile import Histogram, ReferenceProfile
from dropout_risk.serving.monitoring.data import SCORE
from dropout_risk.serving.monitoring.report import DriftCheck
from dropout_risk.serving.settings import MonitoringConfig


def _comparisons(profile: ReferenceProfile, sessions: pd.DataFrame) -> list[tuple[str, Histogram, np.ndarray]]:
    """(what, reference, new values with NaN for missing) for every comparison the profile allows."""
    number = sessions["session_number"].to_numpy()
    out = []
    for key, instrument in profile.instruments.items():
        column = sessions[SCORE + key] if SCORE + key in sessions else pd.Series(np.nan, index=sessions.index)
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        for k, reference in sorted(instrument.sessions.items()):
            out.append((f"{key} intake" if k == 1 else f"{key} session {k}", reference, values[number == k]))
    out.append(("session spacing", profile.spacing, sessions["days"].to_numpy(dtype=float)[number > 1]))
    landmark_rows = (sessions["landmark"] == sessions["session_number"]).to_numpy()
    out.append(("served risk", profile.risk, sessions["probability"].to_numpy(dtype=float)[landmark_rows]))
    return out


def _large(check: DriftCheck, config: MonitoringConfig) -> bool:
    if check.measure == "distribution":
        return check.psi is not None and check.psi >= config.drift_psi
    return abs((check.current or 0.0) - (check.reference or 0.0)) >= config.missing_rate_change


def drift_checks(profile: ReferenceProfile, sessions: pd.DataFrame, config: MonitoringConfig) -> list[DriftCheck]:
    """Distribution (PSI, chi-square) and missing-rate (binomial) checks; a check is ``drifted`` when its
    p-value is below ``drift_alpha`` shared over all checks (Bonferroni) and the change is large enough."""
    checks = []
    for what, reference, values in _comparisons(profile, sessions):
        given = values[np.isfinite(values)]
        spread = distribution_drift(reference, given, config.min_drift_values)
        if spread is not None:
            checks.append(
                DriftCheck(
                    what=what, measure="distribution", n=spread.n, psi=spread.psi, p_value=spread.p_value, drifted=False
                )
            )
        if what in ("session spacing", "served risk"):
            continue
        missing = missing_drift(reference, values.size - given.size, values.size, config.min_drift_values)
        if missing is not None:
            checks.append(
                DriftCheck(
                    what=what,
                    measure="missing_rate",
                    n=missing.n,
                    reference=missing.reference,
                    current=missing.current,
                    p_value=missing.p_value,
                    drifted=False,
                )
            )
    alpha = config.drift_alpha / max(len(checks), 1)
    return [c.model_copy(update={"drifted": c.p_value < alpha and _large(c, config)}) for c in checks]
