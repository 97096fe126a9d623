"""The comparison as people read it: markdown tables and report, a CSV table, the report files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dropout_risk.training.comparison.formatting import p_value, with_ci
from dropout_risk.training.comparison.result import ALPHA, HYPERPARAMETERS, TRAJECTORIES, CompareResult, PairResult


def pooled_table(result: CompareResult) -> pd.DataFrame:
    """One row per set: pooled metrics with their CIs (the comparison table, also as CSV)."""
    rows = []
    for name, s in result.feature_sets.items():
        m = s.metrics.pooled
        row: dict[str, object] = {"feature_set": name, "n_features": s.n_features}
        within = s.metrics.within_landmark
        for metric, value, (lo, hi) in (
            ("within_landmark_auc", within.auc, within.ci),
            ("roc_auc", m.roc_auc, m.roc_auc_ci),
            ("pr_auc", m.pr_auc, m.pr_auc_ci),
            ("brier", m.brier, m.brier_ci),
            ("calibration_slope", m.calibration_slope, m.calibration_slope_ci),
        ):
            row.update({metric: value, f"{metric}_ci_lo": lo, f"{metric}_ci_hi": hi})
        row["informative_from"] = s.metrics.informative_from
        rows.append(row)
    return pd.DataFrame(rows)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pooled_md(result: CompareResult) -> str:
    header = [
        "feature set",
        "features",
        "within-session AUC (95% CI)",
        "pooled ROC AUC, incl. session-number effect (95% CI)",
        "PR AUC (95% CI)",
        "Brier (95% CI)",
        "calibration slope (95% CI)",
        "AUC > 0.5 from session",
    ]
    rows = []
    for name, s in result.feature_sets.items():
        m = s.metrics.pooled
        rows.append(
            [
                name,
                s.n_features,
                with_ci(s.metrics.within_landmark.auc, s.metrics.within_landmark.ci),
                with_ci(m.roc_auc, m.roc_auc_ci),
                with_ci(m.pr_auc, m.pr_auc_ci),
                with_ci(m.brier, m.brier_ci),
                with_ci(m.calibration_slope, m.calibration_slope_ci, 2),
                s.metrics.informative_from or "never",
            ]
        )
    return _md_table(header, rows)


def _by_landmark_md(result: CompareResult) -> str:
    sets = result.feature_sets
    landmarks = sorted({k for s in sets.values() for k in s.metrics.by_landmark}, key=int)
    rows = []
    for name, s in sets.items():
        per = s.metrics.by_landmark
        cells = [with_ci(per[k].roc_auc, per[k].roc_auc_ci) if k in per else "" for k in landmarks]
        rows.append([name, *cells])
    return _md_table(["feature set", *(f"session {k}" for k in landmarks)], rows)


def _pairs_md(pairs: Sequence[PairResult]) -> str:
    rows = [
        [
            p.a,
            p.b,
            with_ci(p.within_landmark.delta_auc, p.within_landmark.ci),
            p_value(p.within_landmark.p_value),
            p_value(p.within_landmark.p_value_holm),
            p_value(p.within_landmark.cv_test.p_value),
            with_ci(p.delta_auc, p.ci),
            f"**yes: {p.better} better**" if p.marked else "no",
        ]
        for p in pairs
    ]
    header = [
        "a",
        "b",
        "within-session AUC(a) - AUC(b) (95% CI)",
        "p",
        "p (Holm)",
        "refit-aware p",
        "pooled AUC(a) - AUC(b), incl. session-number effect (95% CI)",
        "marked",
    ]
    return _md_table(header, rows)


def render_tables(result: CompareResult) -> str:
    """The per-set, by-landmark and pairwise tables in markdown."""
    parts = [
        "## Feature sets: within-session and pooled",
        _pooled_md(result),
        "## ROC AUC by landmark session",
        _by_landmark_md(result),
        "## Pairs of feature sets",
        _pairs_md(result.pairs) if result.pairs else "(one feature set: no pairs)",
    ]
    return "\n\n".join(parts) + "\n"


def _design_md(result: CompareResult) -> list[str]:
    d, data = result.design, result.data
    landmarks = list(d.landmarks)
    span = (
        f"{landmarks[0]}-{landmarks[-1]}"
        if landmarks == list(range(landmarks[0], landmarks[-1] + 1))
        else ", ".join(map(str, landmarks))
    )
    calibration = (
        f"{d.calibration} calibrator for each held-out fold, fitted on the out-of-fold "
        "predictions of that fold's training clients (never on the fold's own labels)"
        if d.calibration != "none"
        else "none: the model's own probabilities (uncalibrated)"
    )
    return [
        "# Which scores predict dropout? A feature-set comparison",
        "",
        f"Model: **{result.model}** ({result.model_reason or 'configured'}). "
        f"{data.clients_evaluated:,} clients ({data.rows:,} landmark rows, "
        f"sessions {span}), dropout rate {data.dropout_rate:.1%}; {data.ongoing_excluded:,} ongoing "
        "episodes left out (their outcome is unknown). Instruments: "
        f"{', '.join(data.instruments) or 'none'}; covariates: {', '.join(data.covariates) or 'none'}.",
        "",
        "## Design",
        "",
        f"- Out-of-fold predictions from {d.folds} client-grouped, outcome-stratified folds"
        + (f", repeated {d.repeats} times (each row's risk averaged over the repeats)" if d.repeats > 1 else "")
        + f"; every feature set used exactly the same folds (fold digest `{d.fold_digest}`) and model seed.",
        f"- Expected-trajectory curves {TRAJECTORIES}; hyperparameters: {HYPERPARAMETERS}.",
        f"- Calibration: {calibration}.",
        f"- 95% CIs: client-clustered bootstrap ({d.bootstrap_resamples} resamples, the same clients for every "
        f"set). Pairs: paired client bootstrap of the AUC difference ({d.pair_resamples} resamples), two-sided "
        "p-value.",
        "- The lead figure is the **within-session AUC**: the mean of the per-session ROC AUCs over the "
        f"sessions where dropouts and completers each have at least {d.min_class_clients} clients "
        "(evaluation.min_class_clients), comparing only clients scored by the same fold's model"
        + (f"; left out: {_excluded(result)}" if _excluded(result) else "")
        + ". The pooled AUC includes the session-number effect (later sessions hold fewer eventual dropouts), "
        "which every set has.",
        "- A pair is **marked** only when, for the within-session AUC difference, the paired bootstrap 95% CI "
        f"excludes 0, its Holm-adjusted p-value (over all {len(result.pairs)} pairs) is below {ALPHA:.2f}, "
        "**and** the refit-aware corrected resampled t-test on the per-fold differences agrees (its 95% CI "
        "excludes 0 on the same side). "
        'Per-landmark differences and the "AUC > 0.5 from session" column (first evaluable session from which '
        "the lower CI bound stays above 0.5) are descriptive, not adjusted for multiplicity.",
        "- The landmark session number is an input of every set. CIs are conditional on the fitted models: "
        "they resample clients, not refits.",
    ]


def _excluded(result: CompareResult) -> str:
    """The sessions left out of the within-session AUC, with their reasons (the same for every set)."""
    first = next(iter(result.feature_sets.values()), None)
    if first is None:
        return ""
    return "; ".join(e.reason for e in first.metrics.within_landmark.excluded)


def _pair_landmarks_md(pairs: Sequence[PairResult]) -> list[str]:
    if not any(p.by_landmark for p in pairs):
        return []
    landmarks = sorted({k for p in pairs for k in p.by_landmark}, key=int)
    rows = [
        [
            f"{p.a} - {p.b}",
            *(
                with_ci(p.by_landmark[k].delta_auc, p.by_landmark[k].ci) if k in p.by_landmark else ""
                for k in landmarks
            ),
        ]
        for p in pairs
    ]
    return [
        "",
        "## AUC differences by landmark session (descriptive)",
        "",
        _md_table(["pair", *(f"session {k}" for k in landmarks)], rows),
    ]


def render_markdown(result: CompareResult) -> str:
    """The human-readable report: design, data, tables, and how to read them."""
    lines = [*_design_md(result), "", render_tables(result).rstrip(), *_pair_landmarks_md(result.pairs)]
    if result.warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in result.warnings)]
    lines += [
        "",
        "Figures: `roc.png` (every set), `roc_<set>.png` (one per set), `auc_by_landmark.png` "
        "(AUC by landmark session with 95% CIs, every set on one plot).",
    ]
    return "\n".join(lines) + "\n"


def write_reports(result: CompareResult, path: Path) -> tuple[Path, Path]:
    """The JSON report at ``path`` and the markdown beside it (same name, ``.md``)."""
    path = Path(path)
    json_path = path.with_suffix(".json") if path.suffix.lower() == ".md" else path
    md_path = json_path.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result.to_json(), indent=2))
    md_path.write_text(render_markdown(result))
    return json_path, md_path
