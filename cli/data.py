"""``validate`` and ``features``: check a clinic's files, build the landmark table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dropout_risk.cli.common import (
    ConfigOption,
    EngineOption,
    EpisodesOption,
    SessionsOption,
    SparkMasterOption,
    check_engine,
    console,
    err_console,
    fail,
    settings,
    user_errors,
)

if TYPE_CHECKING:
    from dropout_risk.features.config import ProjectSettings
    from dropout_risk.features.contract import ValidationResult


def _print_summary(summary: dict) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("clients", f"{summary['clients']:,}")
    table.add_row("sessions", f"{summary['sessions']:,}")
    table.add_row("instruments", ", ".join(summary["instruments"]) or "none")
    table.add_row(
        "episodes",
        f"{summary['dropout']:,} dropout, {summary['completed']:,} completed, {summary['ongoing']:,} ongoing",
    )
    table.add_row("dropout rate", f"{summary['dropout_rate']:.1%} of ended episodes")
    console.print(table)


def _checked(sessions: Path, episodes: Path, config: Path | None) -> tuple[ValidationResult, ProjectSettings]:
    from dropout_risk.training.data import load_contract

    project = settings(config)
    registry = project.registry()
    with user_errors():
        result = load_contract(sessions, episodes, registry)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not result.ok:
        err_console.print(f"[bold red]{len(result.problems)} problem(s) found:[/]")
        for problem in result.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(code=1)
    return result, project


def validate(sessions: SessionsOption, episodes: EpisodesOption, config: ConfigOption = None) -> None:
    """Check a sessions and an episodes file against data contract v1."""
    result, project = _checked(sessions, episodes, config)
    console.print("[bold green]valid[/]: data contract v1")
    _print_summary(result.summary(project.registry()))


def features(
    sessions: SessionsOption,
    episodes: EpisodesOption,
    out: Annotated[Path, typer.Option("--out", help="Output table (.parquet or .csv; the spark engine: .parquet).")],
    engine: EngineOption = "pandas",
    spark_master: SparkMasterOption = "local[*]",
    config: ConfigOption = None,
) -> None:
    """Validate, then build the landmark feature table (one row per client and session k)."""
    check_engine(engine)
    if engine == "spark":
        _features_on_spark(sessions, episodes, out, spark_master, config)
        return
    from dropout_risk.features.landmarks import build_features
    from dropout_risk.features.spec import infer_spec
    from dropout_risk.training.data import write_table

    result, project = _checked(sessions, episodes, config)
    spec = infer_spec(result.sessions, result.episodes, project.registry(), project.features)
    with console.status("building landmark features"):
        table = build_features(result.sessions, result.episodes, spec)
    write_table(table, out)
    groups = spec.groups()
    console.print(
        f"[bold green]wrote[/] {out}: {len(table):,} rows "
        f"({table['client_id'].nunique():,} clients x landmarks 1-{spec.max_landmark})"
    )
    for name, columns in groups.items():
        console.print(f"  {name:<11} {len(columns):>3} features")


def _features_on_spark(sessions: Path, episodes: Path, out: Path, master: str, config: Path | None) -> None:
    """The same table built by Spark: validated per client bucket, spec and curves from the whole data."""
    from dropout_risk.training.spark.jobs import features_job
    from dropout_risk.training.spark.session import SparkUnavailableError, spark_for_job

    project = settings(config)
    try:
        with user_errors(), spark_for_job(master) as spark, console.status("building landmark features on Spark"):
            done = features_job(spark, sessions, episodes, out, project.registry(), project.features)
    except SparkUnavailableError as exc:
        fail(str(exc))
    if done.spec is None:  # a bug, not bad data: features_job returns the spec it built
        raise RuntimeError("the Spark features job returned no feature spec")
    for warning in done.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"[bold green]wrote[/] {out}: {done.rows:,} rows "
        f"({done.clients:,} clients x landmarks 1-{done.spec.max_landmark}), a Parquet dataset"
    )
    for name, columns in done.spec.groups().items():
        console.print(f"  {name:<11} {len(columns):>3} features")
