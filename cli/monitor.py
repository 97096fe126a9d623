"""``monitor``: served risks against what happened, drift and a status per clinic (serving.monitoring)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dropout_risk.cli.common import ConfigOption, console, fail, settings

ClinicOption = Annotated[str | None, typer.Option("--clinic", help="Only this clinic (default: every clinic).")]
SinceOption = Annotated[
    dt.datetime | None,
    typer.Option("--since", formats=["%Y-%m-%d"], help="Episodes ended and clients started on or after (YYYY-MM-DD)."),
]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Write the whole report as JSON here.")]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="Write an HTML report (plot embedded) here.")]
PlotOption = Annotated[Path | None, typer.Option("--plot", help="Write the calibration plot as PNG here.")]


def monitor_command(
    clinic: ClinicOption = None,
    since: SinceOption = None,
    report: ReportOption = None,
    html: HtmlOption = None,
    plot: PlotOption = None,
    config: ConfigOption = None,
) -> None:
    """Realised calibration and discrimination of the served risks, drift, and each clinic's status."""
    from dropout_risk.cli.serve import _sessions
    from dropout_risk.serving.db import snapshot
    from dropout_risk.serving.model_holder import ModelHolder
    from dropout_risk.serving.monitoring.html import render
    from dropout_risk.serving.monitoring.plot import calibration_png
    from dropout_risk.serving.monitoring.service import ServedModelFacts, UnknownClinic, monitor
    from dropout_risk.serving.settings import ServingSettings

    project = settings(config, ServingSettings)
    holder = ModelHolder(project.serving.model_uri)
    holder.refresh()
    if holder.current is None:
        console.print("[bold yellow]no served model could be loaded[/]: no drift, and statuses judge no model")
    try:
        with snapshot(_sessions(config, writer=False)) as db:
            result = monitor(
                db,
                ServedModelFacts.of(holder.current),
                project.monitoring,
                clinic_name=clinic,
                since=since.date() if since else None,
                whole_service=clinic is None,
            )
    except UnknownClinic:
        fail(f"no clinic named {clinic!r} (--clinic)")
    _print(result)
    png = calibration_png(result.clinics) if (html or plot) else None
    if report:
        report.write_text(result.model_dump_json(indent=1), encoding="utf-8")
        console.print(f"[bold green]wrote[/] {report}")
    if html:
        html.write_text(render(result, png), encoding="utf-8")
        console.print(f"[bold green]wrote[/] {html}")
    if plot and png:
        plot.write_bytes(png)
        console.print(f"[bold green]wrote[/] {plot}")


def _print(result) -> None:
    from dropout_risk.serving.monitoring.html import interval, number

    table = Table(title=f"Monitoring: model version {result.model_version}")
    for column in ("clinic", "status", "ended", "O/E (CI)", "ECE", "slope", "AUC (CI)", "open: expected", "drift"):
        table.add_column(column)
    for clinic in [*result.clinics, *([result.service] if result.service else [])]:
        p = clinic.current
        drifted = ", ".join(d.what for d in clinic.drift if d.drifted)
        table.add_row(
            clinic.clinic,
            clinic.status.status,
            str(p.episodes if p else 0),
            f"{number(p.oe)} ({interval(p.oe_ci)})" if p else "n/a",
            number(p.ece, 3) if p else "n/a",
            number(p.calibration_slope) if p else "n/a",
            f"{number(p.within_landmark_auc)} ({interval(p.within_landmark_auc_ci)})" if p else "n/a",
            f"{number(clinic.open.expected_dropout_rate)} of {clinic.open.episodes}",
            drifted or "none",
        )
    console.print(table)
    for clinic in result.clinics:
        console.print(f"{clinic.clinic}: {clinic.status.status} - {clinic.status.rule}")
