"""The calibration plot of served risks against what happened, from a report's bins (PNG).

Built on ``matplotlib.figure.Figure`` (Agg), as training's plots are: no display, no pyplot state.
Aggregates only: each point is a risk bin's mean served risk and observed dropout rate.
"""

from __future__ import annotations

import io

from dropout_risk.serving.monitoring.report import ClinicMonitoring

DPI = 110


def calibration_png(clinics: list[ClinicMonitoring]) -> bytes:
    """One line per clinic (its ended episodes served by the current model), the diagonal, rows per bin."""
    from matplotlib.figure import Figure  # only when a plot is drawn: the server starts without it

    fig = Figure(figsize=(6.0, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="served risk = observed rate")
    for clinic in clinics:
        if clinic.current is None or not clinic.current.calibration_bins:
            continue
        bins = clinic.current.calibration_bins
        oe = clinic.current.oe
        label = f"{clinic.clinic} (O/E {oe:.2f}, {clinic.current.episodes} episodes)" if oe else clinic.clinic
        top.plot([b.mean_risk for b in bins], [b.observed_rate for b in bins], marker="o", label=label)
        bottom.plot([(b.low + b.high) / 2 for b in bins], [b.rows for b in bins], marker=".", label=clinic.clinic)
    top.set(ylabel="Observed dropout rate", xlim=(0, 1), ylim=(0, 1), title="Served risk against what happened")
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="Served dropout risk (landmark sessions of ended episodes)", ylabel="Risks served")
    out = io.BytesIO()
    fig.savefig(out, dpi=DPI, format="png")
    return out.getvalue()
