"""The monitor's figures as Prometheus gauges per clinic (``serving.observability.Metrics.set_monitoring``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from dropout_risk.serving.monitoring.report import STATUS_LEVEL, Monitoring
from dropout_risk.serving.monitoring.service import ServedModelFacts, monitor
from dropout_risk.serving.observability import Metrics

log = logging.getLogger("dropout_risk.monitoring")


def publish(metrics: Metrics, report: Monitoring) -> None:
    for clinic in report.clinics:
        current = clinic.current
        metrics.set_monitoring(
            clinic.clinic,
            {
                "oe": current.oe if current else None,
                "ece": current.ece if current else None,
                "ended_episodes": current.episodes if current else 0,
                "status": STATUS_LEVEL[clinic.status.status],
            },
        )


def refresh_all(app: FastAPI) -> None:
    """Recompute every clinic's figures and publish them (the background refresh)."""
    with app.state.read_sessions() as db:
        report = monitor(db, ServedModelFacts.of(app.state.holder.current), app.state.settings.monitoring)
    publish(app.state.metrics, report)


async def refresh_every(app: FastAPI, seconds: float) -> None:
    """Refresh the gauges every ``seconds`` (in a worker thread) until cancelled; a failure waits for the next.

    Only in the process that leads (``serving.leader``): the gauges come from one process of all workers
    and replicas (aggregate over the ``worker`` label with ``max``), not N computations of the same figures.
    """
    while True:
        try:
            if await asyncio.to_thread(app.state.leader.held):
                await asyncio.to_thread(refresh_all, app)
        except Exception as exc:  # the database away for a moment: the gauges keep their last figures
            log.warning("monitoring refresh failed (%s)", type(exc).__name__)
        await asyncio.sleep(seconds)
