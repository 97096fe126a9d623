"""The promotion gate's figures and rules: decisions on intervals, not on points.

A few hundred test clients give wide intervals, and a point estimate inside them decides nothing,
so every rule reads a 95% client-bootstrap interval:

- calibration: the calibration slope's interval must reach into ``gate.slope_min``-``slope_max``,
  and the ECE's interval must reach below ``gate.max_ece``;
- a first model: its within-session AUC interval must exclude 0.5 (else these data do not predict
  dropout beyond the session number), and its within-session AUC must beat ``intake_only``'s
  (the intake scores alone) on the same test clients;
- against a champion, on the same clients with a paired bootstrap: the lower bound of the
  within-session AUC difference (challenger minus champion) must lie above ``-gate.max_auc_drop``;
- a worse session must not lower the risk (``gate.max_monotonicity_violation``).

Every refusal names the rule, the figures and their intervals.
"""

from __future__ import annotations

import math

import pandas as pd

from dropout_risk.training.evaluation.bootstrap import bootstrap_metric_cis
from dropout_risk.training.evaluation.metrics import calibration_slope_intercept, expected_calibration_error, roc_auc
from dropout_risk.training.evaluation.within_landmark import (
    WithinLandmarkAUC,
    paired_within_landmark_difference,
    within_landmark_auc,
)
from dropout_risk.training.settings import GateConfig

Figures = dict[str, float]  # flat numbers: they are logged as MLflow metrics as they are


def model_figures(
    scored: pd.DataFrame,
    score: str,
    *,
    min_class_clients: int,
    n_resamples: int,
    seed: int,
    within: WithinLandmarkAUC | None = None,
) -> Figures:
    """One model's figures on scored test rows (``client_id``, ``landmark``, ``label``, ``score``).

    ``within``: the within-session AUC when the caller computed it otherwise (out-of-fold risks).
    """
    y, p = scored["label"].to_numpy(dtype=int), scored[score].to_numpy(dtype=float)
    if within is None:
        within = within_landmark_auc(
            scored, score, min_class_clients=min_class_clients, n_resamples=n_resamples, seed=seed
        )
    cis = bootstrap_metric_cis(
        scored, score=score, metrics=("calibration_slope", "ece"), n_resamples=n_resamples, seed=seed
    )["pooled"]
    slope, intercept = calibration_slope_intercept(y, p)
    return {
        "within_landmark_auc": within.auc,
        "within_landmark_auc_ci_lo": within.ci[0],
        "within_landmark_auc_ci_hi": within.ci[1],
        "roc_auc": roc_auc(y, p),
        "calibration_slope": slope,
        "calibration_slope_ci_lo": cis["calibration_slope"][0],
        "calibration_slope_ci_hi": cis["calibration_slope"][1],
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p),
        "ece_ci_lo": cis["ece"][0],
        "ece_ci_hi": cis["ece"][1],
        "n_rows": float(len(y)),
        "n_clients": float(scored["client_id"].nunique()),
    }


def paired_figures(scored: pd.DataFrame, *, min_class_clients: int, n_resamples: int, seed: int) -> Figures:
    """Challenger minus champion within-session AUC on the same resampled clients."""
    paired = paired_within_landmark_difference(
        scored, "challenger", "champion", min_class_clients=min_class_clients, n_resamples=n_resamples, seed=seed
    )
    return {
        "vs_champion_within_delta": paired["delta"],
        "vs_champion_within_delta_ci_lo": paired["ci"][0],
        "vs_champion_within_delta_ci_hi": paired["ci"][1],
    }


def _interval(figures: Figures, name: str) -> str:
    return f"{figures[name]:.3f} ({figures[f'{name}_ci_lo']:.3f}-{figures[f'{name}_ci_hi']:.3f})"


def _at_most(value: float, limit: float) -> bool:
    return not math.isnan(value) and value <= limit  # an unknown figure never passes


def judge(challenger: Figures, champion: Figures | None, gate: GateConfig) -> list[str]:
    """Reasons the challenger fails the gate (empty = it passes)."""
    reasons = [*_calibration(challenger, gate), *_monotonicity(challenger, gate)]
    if champion is None:
        reasons += _first_model(challenger)
    else:
        reasons += _against_champion(challenger, champion, gate)
    return reasons


def _calibration(challenger: Figures, gate: GateConfig) -> list[str]:
    reasons = []
    lo, hi = challenger["calibration_slope_ci_lo"], challenger["calibration_slope_ci_hi"]
    if not (_at_most(gate.slope_min, hi) and _at_most(lo, gate.slope_max)):
        reasons.append(
            f"calibration slope {_interval(challenger, 'calibration_slope')}: its interval does not reach "
            f"{gate.slope_min}-{gate.slope_max}"
        )
    if not _at_most(challenger["ece_ci_lo"], gate.max_ece):
        reasons.append(f"ECE {_interval(challenger, 'ece')}: even its lower bound is above {gate.max_ece}")
    return reasons


def _monotonicity(challenger: Figures, gate: GateConfig) -> list[str]:
    worst = challenger.get("monotonicity_worst_rate", 0.0)
    if _at_most(worst, gate.max_monotonicity_violation):
        return []
    return [
        f"the risk fell when the latest session was made worse in {worst:.1%} of held-out histories (worst of: "
        "alliance or outcome 5 points worse, one more missed appointment, with or without a week's delay); at "
        f"most {gate.max_monotonicity_violation:.1%} is allowed (gate.max_monotonicity_violation)"
    ]


def _first_model(challenger: Figures) -> list[str]:
    reasons = []
    if not challenger["within_landmark_auc_ci_lo"] > 0.5:
        reasons.append(
            f"within-session AUC {_interval(challenger, 'within_landmark_auc')}: its interval does not exclude "
            "0.5, so these data do not show that the scores predict dropout beyond the session number"
        )
    intake = challenger.get("intake_only_within_landmark_auc", math.nan)
    if not math.isnan(intake) and not challenger["within_landmark_auc"] > intake:
        reasons.append(
            f"within-session AUC {challenger['within_landmark_auc']:.3f} does not beat intake_only's {intake:.3f} "
            "(the session number and the intake scores alone) on the same test clients"
        )
    return reasons


def _against_champion(challenger: Figures, champion: Figures, gate: GateConfig) -> list[str]:
    lo = challenger["vs_champion_within_delta_ci_lo"]
    if not math.isnan(lo) and lo > -gate.max_auc_drop:
        return []
    return [
        f"within-session AUC {challenger['within_landmark_auc']:.3f} vs the champion's "
        f"{champion['within_landmark_auc']:.3f} on the same test clients: difference "
        f"{_interval(challenger, 'vs_champion_within_delta')}; its lower bound is more than {gate.max_auc_drop} "
        "below the champion's (gate.max_auc_drop)"
    ]
