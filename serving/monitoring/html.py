"""The monitor's report as one self-contained HTML file (``dropout-risk monitor --html``).

Every text is escaped; the calibration plot is embedded as a data: URI. Aggregates only.
"""

from __future__ import annotations

import base64
from html import escape

from dropout_risk.serving.monitoring.report import ClinicMonitoring, Monitoring, Performance


def number(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def interval(values: list[float | None]) -> str:
    return f"{number(values[0])}-{number(values[1])}"


def _performance_cells(p: Performance | None) -> str:
    if p is None:
        return "<td colspan=6>no ended episodes served by this model</td>"
    cells = [
        str(p.episodes),
        f"{number(p.oe)} ({interval(p.oe_ci)})",
        number(p.calibration_slope),
        number(p.calibration_intercept),
        number(p.ece, 3),
        f"{number(p.within_landmark_auc)} ({interval(p.within_landmark_auc_ci)})",
    ]
    return "".join(f"<td>{escape(c)}</td>" for c in cells)


HEAD = "<th>ended</th><th>O/E (CI)</th><th>slope</th><th>intercept</th><th>ECE</th><th>within-session AUC (CI)</th>"


def _recalibrated(clinic: ClinicMonitoring) -> str:
    if clinic.since_recalibration is None or clinic.recalibration is None:
        return ""
    cells = _performance_cells(clinic.since_recalibration)
    return f"<tr><td>through recalibration {clinic.recalibration.id}</td>{cells}</tr>"


def _clinic(clinic: ClinicMonitoring) -> str:
    status = clinic.status
    drifted = [d for d in clinic.drift if d.drifted]
    rows = "".join(
        f"<tr><td>{escape(g.model_version)}</td><td>{escape(g.month)}</td>{_performance_cells(g.performance)}</tr>"
        for g in clinic.by_version_month
    )
    drift = "".join(
        f"<li>{escape(d.what)} ({escape(d.measure)}): PSI {number(d.psi)}, p {d.p_value:.2g}, n {d.n}</li>"
        for d in drifted
    )
    open_ = clinic.open
    return (
        f"<h2>{escape(clinic.clinic)}: <span class=status-{escape(status.status)}>{escape(status.status)}</span></h2>"
        f"<p>{escape(status.rule)}</p>"
        f"<table><tr><th>served by</th>{HEAD}</tr><tr><td>current model</td>{_performance_cells(clinic.current)}</tr>"
        f"{_recalibrated(clinic)}</table><h3>By model version and month of episode end</h3>"
        f"<table><tr><th>version</th><th>month</th>{HEAD}</tr>{rows}</table>"
        f"<p>Open episodes: {open_.episodes}, expected dropout rate {number(open_.expected_dropout_rate)}</p>"
        f"<h3>Drift flagged</h3><ul>{drift or '<li>none</li>'}</ul>"
    )


def render(report: Monitoring, png: bytes | None) -> str:
    clinics = [*report.clinics, *([report.service] if report.service else [])]
    image = f'<img alt="calibration plot" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>dropout-risk monitoring</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}td,th{padding:2px 8px;border-bottom:1px solid"
        " #ddd}.status-recalibrate,.status-retrain{color:#b00}.status-watch{color:#a60}</style>"
        f"<h1>Monitoring</h1><p>Model version {escape(str(report.model_version))}, generated "
        f"{escape(report.generated_at.isoformat(timespec='seconds'))}"
        f"{', since ' + escape(report.since.isoformat()) if report.since else ''}; statuses need at least "
        f"{report.min_ended} ended episodes (monitoring.min_ended).</p>{image}"
        + "".join(_clinic(c) for c in clinics)
        + "</html>"
    )
