"""``compare``: which scores predict dropout, and from which session on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dropout_risk.cli.common import ConfigOption, console, err_console, fail, settings, user_errors
from dropout_risk.cli.data import EpisodesOption, SessionsOption
from dropout_risk.training.compare_settings import CompareSettings
from dropout_risk.training.jobs.compare import DEFAULT_FEATURE_SETS, CompareError, compare, write_reports
from dropout_risk.training.splits import TooFewClientsError


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ci(value, ci, digits: int = 3) -> str:
    """The estimate above its 95% CI: two short lines keep the tables narrow."""
    lo, hi = ci or (None, None)
    return f"{_num(value, digits)}\n({_num(lo, digits)} to {_num(hi, digits)})"


def _p(value) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def sets_table(report: dict) -> Table:
    data = report["data"]
    table = Table(
        title=f"Feature sets: {report['model']}, {data['clients_evaluated']:,} clients, "
        f"{data['rows']:,} rows, out-of-fold, 95% CIs"
    )
    table.add_column("feature set (n inputs)", overflow="fold", min_width=12)
    for column in ("ROC AUC", "PR AUC", "Brier", "calibration slope"):
        table.add_column(column, justify="center", overflow="fold")
    for name, m in report["feature_sets"].items():
        table.add_row(
            f"{name} ({m['n_features']})",
            _ci(m["roc_auc"], m["roc_auc_ci"]),
            _ci(m["pr_auc"], m["pr_auc_ci"]),
            _ci(m["brier"], m["brier_ci"]),
            _ci(m["calibration_slope"], m["calibration_slope_ci"], 2),
        )
    return table


def landmark_table(report: dict) -> Table:
    """Sessions down, sets across: read down a column to see from which session a set discriminates."""
    sets = report["feature_sets"]
    landmarks = sorted({k for m in sets.values() for k in m["by_landmark"]}, key=int)
    table = Table(title="ROC AUC by landmark session (95% CI): from which session on")
    table.add_column("session", justify="right", no_wrap=True)
    for name in sets:
        table.add_column(name, justify="center", overflow="fold", min_width=8)
    for k in landmarks:
        table.add_row(
            k,
            *(
                _ci(m["by_landmark"][k]["roc_auc"], m["by_landmark"][k]["roc_auc_ci"], 2)
                if k in m["by_landmark"]
                else ""
                for m in sets.values()
            ),
        )
    table.add_section()
    table.add_row(
        "AUC > 0.5\nfrom",
        *(f"session {m['informative_from']}" if m.get("informative_from") else "never" for m in sets.values()),
    )
    return table


def pairs_table(report: dict) -> Table:
    table = Table(
        title="Pairs: AUC(a) - AUC(b) on the same clients (paired client bootstrap); "
        "marked = 95% CI excludes 0 and Holm-adjusted p < 0.05"
    )
    table.add_column("a vs b", overflow="fold", min_width=12)
    table.add_column("delta AUC", justify="center", overflow="fold")
    for column in ("p", "p Holm", "refit-aware p"):
        table.add_column(column, justify="right")
    table.add_column("marked", overflow="fold")
    for pair in report["pairs"]:
        mark = f"[bold green]* {pair['better']} better[/]" if pair["marked"] else "no"
        table.add_row(
            f"{pair['a']}\nvs {pair['b']}",
            _ci(pair["delta_auc"], pair["ci"]),
            _p(pair["p_value"]),
            _p(pair["p_value_holm"]),
            _p(pair["cv_test"]["p_value"]),
            mark,
        )
    return table


def compare_command(
    sessions: SessionsOption,
    episodes: EpisodesOption,
    feature_sets: Annotated[
        str | None,
        typer.Option(
            "--feature-sets",
            help="Comma-separated sets: groups joined by + (attendance, outcome, alliance, covariates) or sets "
            f"defined in [compare.feature_sets]. Default: the config's sets, else {','.join(DEFAULT_FEATURE_SETS)}.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="lightgbm or logistic (default: compare.model, lightgbm).")
    ] = None,
    landmarks: Annotated[
        str | None,
        typer.Option(
            "--landmarks",
            help="Landmark sessions to train and evaluate on: 1-6, 3 or 1,2,5 (default: 1 to features.max_landmark).",
        ),
    ] = None,
    folds: Annotated[
        int | None, typer.Option("--folds", help="Client-grouped folds (default: compare.folds, 5).")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option("--repeats", help="Repeats of the grouped CV (default: compare.repeats, 1).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the JSON report here, and the markdown report beside it (.md)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for the plots (ROC per set, AUC by landmark).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Compare feature sets on the same client-grouped folds: which scores predict dropout, from which session."""
    project = settings(config, CompareSettings)
    with user_errors(), console.status("comparing feature sets") as status:
        try:
            result = compare(
                sessions,
                episodes,
                project,
                feature_sets=feature_sets,
                model=model,
                landmarks=landmarks,
                folds=folds,
                repeats=repeats,
                out_dir=out,
                progress=lambda message: status.update(message),
            )
        except (CompareError, TooFewClientsError) as exc:
            fail(str(exc))
    for warning in result["warnings"]:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(sets_table(result))
    console.print(landmark_table(result))
    if result["pairs"]:
        console.print(pairs_table(result))
    console.print(
        f"MLflow run {result['run_id']} (experiment {project.compare.experiment}): one nested run per set; "
        f"{result['elapsed_seconds']:.0f} s"
    )
    if report:
        json_path, md_path = write_reports(result, report)
        console.print(f"report: {json_path} and {md_path}")
    if out:
        console.print(f"plots: {out}")
