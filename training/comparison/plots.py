"""The comparison's figures: ROC curves of every set, and AUC by landmark session with CIs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dropout_risk.training.comparison.result import CompareResult
from dropout_risk.training.evaluation.plots import plot_by_landmark, plot_roc


def slugs(names: Sequence[str]) -> dict[str, str]:
    """File- and metric-safe names ("outcome+alliance" -> "outcome_alliance"), unique."""
    out: dict[str, str] = {}
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "set"
        candidate, n = slug, 2
        while candidate in out.values():
            candidate, n = f"{slug}_{n}", n + 1
        out[name] = candidate
    return out


def write_plots(result: CompareResult, scored: pd.DataFrame, directory: Path) -> dict[str, Path]:
    """roc.png (every set), roc_<set>.png (one per set), auc_by_landmark.png (every set, with CIs).

    Keys: ``roc``, ``roc:<set>`` and ``auc_by_landmark``.
    """
    names = list(result.feature_sets)
    directory.mkdir(parents=True, exist_ok=True)
    y = scored["label"].to_numpy(dtype=float)
    curves = {name: (y, scored[f"risk_{i}"].to_numpy()) for i, name in enumerate(names)}
    files = {"roc": plot_roc(curves, directory / "roc.png")}
    for name, slug in slugs(names).items():
        files[f"roc:{name}"] = plot_roc({name: curves[name]}, directory / f"roc_{slug}.png")
    sets = result.feature_sets.values()
    by_landmark = {s.name: {k: {"roc_auc": m.roc_auc} for k, m in s.metrics.by_landmark.items()} for s in sets}
    cis = {s.name: {k: {"roc_auc": list(m.roc_auc_ci)} for k, m in s.metrics.by_landmark.items()} for s in sets}
    files["auc_by_landmark"] = plot_by_landmark(by_landmark, "roc_auc", directory / "auc_by_landmark.png", cis=cis)
    return files
