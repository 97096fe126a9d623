"""Evaluation figures written to PNG files.

Figures are built with ``matplotlib.figure.Figure`` directly (its default canvas is Agg), not
through ``pyplot``: nothing needs a display, no global backend is switched, and no figure is
left open in pyplot's registry. Each function returns the path it wrote (parents created).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from dropout_risk.training.evaluation.metrics import (
    calibration_slope_intercept,
    check_pair,
    net_benefit,
    net_benefit_treat_all,
    roc_auc,
)

DPI = 120


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def plot_roc(curves: Mapping[str, tuple], path) -> Path:
    """ROC curves of several models on one axes; AUC in the legend. ``curves``: name -> (y, p)."""
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, (y, p) in curves.items():
        y, p = check_pair(y, p)
        auc = roc_auc(y, p)
        if np.isfinite(auc):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, label=f"{name} (AUC {_fmt(auc)})")
        else:
            ax.plot([], [], label=f"{name} (AUC n/a)")
    ax.set(
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (sensitivity)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="ROC curve",
    )
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_calibration(y, p, path, n_bins: int = 10) -> Path:
    """Reliability diagram (equal-width bins) above a histogram of predicted risk."""
    y, p = check_pair(y, p)
    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    if y.size:
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        slope, intercept = calibration_slope_intercept(y, p)
        top.plot(
            predicted, observed, marker="o", label=f"model (slope {_fmt(slope, 2)}, intercept {_fmt(intercept, 2)})"
        )
    top.set(ylabel="Observed dropout rate", xlim=(0, 1), ylim=(0, 1), title="Calibration")
    top.legend(loc="upper left", fontsize="small")
    bottom.hist(p, bins=np.linspace(0.0, 1.0, 2 * n_bins + 1), color="tab:blue", alpha=0.7)
    bottom.set(xlabel="Predicted dropout risk", ylabel="Rows")
    return _save(fig, path)


def _landmark_order(keys) -> list[str]:
    def key(k):
        try:
            return (0, float(k), str(k))
        except (TypeError, ValueError):
            return (1, 0.0, str(k))

    return sorted(keys, key=key)


def plot_by_landmark(by_landmark: Mapping[str, Mapping[str, dict]], metric: str, path, cis=None) -> Path:
    """``metric`` against landmark session, one line per model, with CI error bars if given.

    ``by_landmark``: model -> landmark -> metrics (``evaluate(...)["by_landmark"]`` per model).
    ``cis``: model -> landmark -> metric -> [lo, hi] (``bootstrap_metric_cis(...)["by_landmark"]``).
    """
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    n_models = max(len(by_landmark), 1)
    for i, (model, per_landmark) in enumerate(by_landmark.items()):
        keys = _landmark_order(per_landmark)
        x = np.arange(len(keys), dtype=float) + 0.08 * (i - (n_models - 1) / 2)  # dodge overlapping bars
        values = np.array([per_landmark[k].get(metric, np.nan) for k in keys], dtype=float)
        model_cis = (cis or {}).get(model, {})
        lo = np.array([(model_cis.get(k, {}).get(metric) or [np.nan, np.nan])[0] for k in keys], dtype=float)
        hi = np.array([(model_cis.get(k, {}).get(metric) or [np.nan, np.nan])[1] for k in keys], dtype=float)
        if np.isfinite(lo).any():
            err = np.vstack([np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)])
            err = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(x, values, yerr=err, marker="o", capsize=3, label=model)
        else:
            ax.plot(x, values, marker="o", label=model)
        ax.set_xticks(np.arange(len(keys)), keys)
    ax.set(xlabel="Landmark session", ylabel=metric.replace("_", " "), title=f"{metric.replace('_', ' ')} by landmark")
    if by_landmark:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_decision_curve(curves: Mapping[str, tuple], path, thresholds=None) -> Path:
    """Net benefit against threshold probability for each model, plus treat-all and treat-none."""
    thresholds = np.linspace(0.05, 0.6, 56) if thresholds is None else np.asarray(thresholds, dtype=float)
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    top = 0.0
    treat_all = None
    for name, (y, p) in curves.items():
        y, p = check_pair(y, p)
        nb = net_benefit(y, p, thresholds)
        ax.plot(thresholds, nb, label=name)
        top = max(top, float(np.nanmax(nb)) if np.isfinite(nb).any() else 0.0)
        if treat_all is None:
            treat_all = net_benefit_treat_all(y, thresholds)
    if treat_all is not None:
        ax.plot(thresholds, treat_all, linestyle="--", color="grey", label="treat all")
        top = max(top, float(np.nanmax(treat_all)) if np.isfinite(treat_all).any() else 0.0)
    ax.axhline(0.0, color="black", linewidth=1, label="treat none")
    top = top if top > 0 else 0.05
    # treat-all plunges at high thresholds: keep the interesting range visible
    ax.set(
        xlabel="Threshold probability",
        ylabel="Net benefit",
        title="Decision curve",
        ylim=(-0.25 * top, 1.1 * top),
        xlim=(thresholds.min(), thresholds.max()) if thresholds.size else None,
    )
    ax.legend(fontsize="small")
    return _save(fig, path)
