"""``compare``: which scores predict dropout, and from which session on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dropout_risk.cli.common import (
    ConfigOption,
    EpisodesOption,
    SessionsOption,
    console,
    err_console,
    fail,
    settings,
    user_errors,
)
from dropout_risk.training.comparison.formatting import p_value, with_ci

# The help text's copy of training.comparison.feature_sets.DEFAULT_FEATURE_SETS (that module imports
# pandas and scikit-learn, seconds at start-up); tests/cli/test_cli_startup.py keeps the two equal.
DEFAULT_FEATURE_SETS_HELP = "landmark,outcome,alliance,outcome+alliance,outcome+alliance+attendance+covariates"


if TYPE_CHECKING:
    from dropout_risk.training.comparison.result import CompareResult


def _ci(value: float | None, ci: Sequence[float | None] | None, digits: int = 3) -> str:
    """The estimate above its 95% CI: two short lines keep the tables narrow."""
    return with_ci(value, ci, digits, sep="\n")


def sets_table(result: CompareResult) -> Table:
    data = result.data
    table = Table(
        title=f"Feature sets: {result.model}, {data.clients_evaluated:,} clients, "
        f"{data.rows:,} rows, out-of-fold, 95% CIs"
    )
    table.add_column("feature set (n inputs)", overflow="fold", min_width=12)
    for column in (
        "within-session AUC",
        "pooled ROC AUC\n(incl. session-\nnumber effect)",
        "PR AUC",
        "Brier",
        "calibration slope",
    ):
        table.add_column(column, justify="center", overflow="fold")
    for name, s in result.feature_sets.items():
        m = s.metrics.pooled
        table.add_row(
            f"{name} ({s.n_features})",
            _ci(s.metrics.within_landmark.auc, s.metrics.within_landmark.ci),
            _ci(m.roc_auc, m.roc_auc_ci),
            _ci(m.pr_auc, m.pr_auc_ci),
            _ci(m.brier, m.brier_ci),
            _ci(m.calibration_slope, m.calibration_slope_ci, 2),
        )
    return table


def landmark_table(result: CompareResult) -> Table:
    """Sessions down, sets across: read down a column to see from which session a set discriminates."""
    sets = [s.metrics for s in result.feature_sets.values()]
    landmarks = sorted({k for m in sets for k in m.by_landmark}, key=int)
    table = Table(title="ROC AUC by landmark session (95% CI): from which session on")
    table.add_column("session", justify="right", no_wrap=True)
    for name in result.feature_sets:
        table.add_column(name, justify="center", overflow="fold", min_width=8)
    for k in landmarks:
        table.add_row(
            k,
            *(
                _ci(m.by_landmark[k].roc_auc, m.by_landmark[k].roc_auc_ci, 2) if k in m.by_landmark else ""
                for m in sets
            ),
        )
    table.add_section()
    table.add_row(
        "AUC > 0.5\nfrom\n(evaluable\nsessions)",
        *(f"session {m.informative_from}" if m.informative_from else "never" for m in sets),
    )
    return table


def pairs_table(result: CompareResult) -> Table:
    table = Table(
        title="Pairs: within-session AUC(a) - AUC(b) on the same clients (paired client bootstrap); marked = "
        "95% CI excludes 0, Holm-adjusted p < 0.05 and the refit-aware test agrees"
    )
    table.add_column("a vs b", overflow="fold", min_width=12)
    table.add_column("delta within-\nsession AUC", justify="center", overflow="fold")
    for column in ("p", "p Holm", "refit-aware p"):
        table.add_column(column, justify="right")
    table.add_column("delta pooled AUC\n(incl. session)", justify="center", overflow="fold")
    table.add_column("marked", overflow="fold")
    for pair in result.pairs:
        within = pair.within_landmark
        mark = f"[bold green]* {pair.better} better[/]" if pair.marked else "no"
        table.add_row(
            f"{pair.a}\nvs {pair.b}",
            _ci(within.delta_auc, within.ci),
            p_value(within.p_value),
            p_value(within.p_value_holm),
            p_value(within.cv_test.p_value),
            _ci(pair.delta_auc, pair.ci),
            mark,
        )
    return table


FeatureSetsOption = Annotated[
    str | None,
    typer.Option(
        "--feature-sets",
        help="Comma-separated sets: groups joined by + (attendance, outcome, alliance, covariates) or sets "
        f"defined in \\[compare.feature_sets]. Default: the config's sets, else {DEFAULT_FEATURE_SETS_HELP}.",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="lightgbm or logistic (default: compare.model, else logistic below evaluation.small_data_clients "
        "ended episodes and lightgbm above).",
    ),
]
LandmarksOption = Annotated[
    str | None,
    typer.Option(
        "--landmarks",
        help="Landmark sessions to train and evaluate on: 1-6, 3 or 1,2,5 (default: 1 to features.max_landmark).",
    ),
]
FoldsOption = Annotated[int | None, typer.Option("--folds", help="Client-grouped folds (default: compare.folds, 5).")]
RepeatsOption = Annotated[
    int | None, typer.Option("--repeats", help="Repeats of the grouped CV (default: compare.repeats, 1).")
]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Write the JSON report here, and the markdown report beside it (.md)."),
]
PlotsOption = Annotated[
    Path | None, typer.Option("--out", help="Directory for the plots (ROC per set, AUC by landmark).")
]


def compare_command(
    sessions: SessionsOption,
    episodes: EpisodesOption,
    feature_sets: FeatureSetsOption = None,
    model: ModelOption = None,
    landmarks: LandmarksOption = None,
    folds: FoldsOption = None,
    repeats: RepeatsOption = None,
    report: ReportOption = None,
    out: PlotsOption = None,
    config: ConfigOption = None,
) -> None:
    """Compare feature sets on the same client-grouped folds: which scores predict dropout, from which session."""
    from dropout_risk.training.compare_settings import CompareSettings
    from dropout_risk.training.comparison.errors import CompareError
    from dropout_risk.training.comparison.report import write_reports
    from dropout_risk.training.jobs.compare import compare
    from dropout_risk.training.splits import TooFewClientsError

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
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"model: {result.model} ({result.model_reason})", highlight=False)
    excluded = next(iter(result.feature_sets.values())).metrics.within_landmark.excluded
    for landmark in excluded:
        console.print(f"within-session AUC leaves out session {landmark.landmark}: {landmark.reason}", highlight=False)
    console.print(sets_table(result))
    console.print(landmark_table(result))
    if result.pairs:
        console.print(pairs_table(result))
    console.print(
        f"MLflow run {result.run_id} (experiment {project.compare.experiment}): one nested run per set; "
        f"{result.elapsed_seconds or 0.0:.0f} s"
    )
    if report:
        json_path, md_path = write_reports(result, report)
        console.print(f"report: {json_path} and {md_path}")
    if out:
        console.print(f"plots: {out}")
