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


MethodOption = Annotated[
    str, typer.Option("--method", help="intercept (default) or logistic (intercept and slope: more episodes).")
]


def recalibrate_command(
    clinic: Annotated[str, typer.Option("--clinic", help="The clinic to recalibrate the served model for.")],
    method: MethodOption = "intercept",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Fit and show before/after; store nothing.")] = False,
    revert: Annotated[
        bool, typer.Option("--revert", help="Remove the clinic's recalibration of the served model.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (stored with it; required to store).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who (stored with it; default: $USER).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Store without asking for confirmation.")] = False,
    config: ConfigOption = None,
) -> None:
    """Fit, show and store (or --revert) a clinic's update of the served model's calibrated log-odds."""
    import os

    from dropout_risk.cli.serve import _sessions
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.model_holder import ModelHolder
    from dropout_risk.serving.monitoring.data import clinics
    from dropout_risk.serving.monitoring.recalibrate import RecalibrationRefused, as_row, plan
    from dropout_risk.serving.recalibration import revert as revert_recalibration
    from dropout_risk.serving.recalibration import store
    from dropout_risk.serving.settings import ServingSettings

    if method not in ("intercept", "logistic"):
        fail("--method must be intercept or logistic")
    project = settings(config, ServingSettings)
    holder = ModelHolder(project.serving.model_uri)
    holder.refresh()
    if holder.current is None:
        fail(f"no served model could be loaded from {project.serving.model_uri}: a recalibration is of one version")
    version, who = holder.current.version, by or os.environ.get("USER") or "unknown"
    with transaction(_sessions(config)) as db:
        found = clinics(db, name=clinic)
        if not found:
            fail(f"no clinic named {clinic!r} (--clinic)")
        if revert:
            removed = revert_recalibration(db, found[0].id, version, who)
            console.print(f"reverted recalibration {removed.id}" if removed else "no recalibration to revert")
            return
        try:
            fitted = plan(db, found[0].id, clinic, version, method, project.monitoring)
        except RecalibrationRefused as exc:
            fail(f"refused: {exc}")
        _print_plan(fitted)
        if dry_run:
            return
        if not reason:
            fail("--reason is required to store a recalibration (who and why are kept with it)")
        if not yes and not typer.confirm(f"store this recalibration for {clinic}, model version {version}?"):
            fail("not stored")
        stored = store(db, as_row(found[0].id, fitted, who, reason))
        console.print(f"[bold green]stored recalibration {stored.id}[/]: {clinic}'s risks from model version {version}")


def _print_plan(fitted) -> None:
    from dropout_risk.serving.monitoring.html import interval, number

    console.print(
        f"{fitted.clinic}, model version {fitted.model_version}: logit p' = {fitted.intercept:.3f} + "
        f"{fitted.slope:.3f} x logit p ({fitted.method}; {fitted.episodes} ended episodes, {fitted.dropouts} dropouts)"
    )
    table = Table(title=f"Out of sample ({fitted.folds} client folds)")
    for column in ("", "O/E (CI)", "slope (CI)", "ECE (CI)"):
        table.add_column(column)
    for name, f in (("before", fitted.before), ("after", fitted.after)):
        table.add_row(
            name,
            f"{number(f.oe)} ({interval(f.oe_ci)})",
            f"{number(f.slope)} ({interval(f.slope_ci)})",
            f"{number(f.ece, 3)} ({interval(f.ece_ci)})",
        )
    console.print(table)
