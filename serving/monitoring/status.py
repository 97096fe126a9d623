"""A clinic's status and the rule that set it, from its figures (README, "Monitoring").

In order, the first rule that holds:

1. ``retrain``: at least ``min_ended`` ended episodes served by the current model, and their
   within-session AUC interval lies entirely below the model's validation within-session AUC
   (the low end of its interval when training logged one: both are estimates) (discrimination
   is lost: no recalibration restores it);
2. ``recalibrate``: at least ``min_ended`` ended episodes, and the O/E interval excludes 1
   (risks systematically too low or too high: a local intercept update is the remedy); or the
   clinic's recalibration was fitted for another model version than the one served (a new
   champion never inherits it: the clinic needs one of its own);
3. ``retrain``: an instrument's distribution drifted with PSI >= ``retrain_psi`` (the clinic's
   clients are not those the model learnt from);
4. ``watch``: any drift check flagged, or the O/E interval excludes 1 on at least ``min_ended_watch``
   but fewer than ``min_ended`` episodes (an early sign, not yet enough to act on). Below
   ``min_ended_watch`` (30) the interval is not read at all: it is clustered by client, and with a
   handful of clients such an interval is far too narrow (one episode gives a zero-width one);
5. ``ok``.

While the clinic has a recalibration of the served model, rules 1, 2 and 4 read only the ended
episodes whose risks all went through it (``since_recalibration``), and the rule says so.
"""

from __future__ import annotations

from dropout_risk.serving.monitoring.report import DriftCheck, Performance, RecalibrationInfo, Status
from dropout_risk.serving.settings import MonitoringConfig

INSTRUMENT_CHECKS = ("intake", "session")


def _excludes_one(ci: list[float | None]) -> bool:
    low, high = ci
    return low is not None and high is not None and (low > 1 or high < 1)


def _figures(current: Performance | None, validation_auc: float | None) -> dict[str, float | int | str | None]:
    if current is None:
        return {"ended_episodes": 0}
    return {
        "ended_episodes": current.episodes,
        "oe": current.oe,
        "oe_ci_low": current.oe_ci[0],
        "oe_ci_high": current.oe_ci[1],
        "within_landmark_auc": current.within_landmark_auc,
        "within_landmark_auc_ci_high": current.within_landmark_auc_ci[1],
        "validation_within_landmark_auc_ci_low": validation_auc,
    }


def clinic_status(
    current: Performance | None,
    drift: list[DriftCheck],
    validation_auc: float | None,
    config: MonitoringConfig,
    stale: RecalibrationInfo | None = None,
    through: int | None = None,
) -> Status:
    """The first rule that holds (module docstring); ``stale``: the clinic's recalibration of another version.

    ``through``: the id of the clinic's recalibration of the served model, ``current`` being its episodes.
    """
    status = _status(current, drift, validation_auc, config, stale)
    if through is None:
        return status
    rule = f"{status.rule} (episodes served through recalibration {through})"
    return status.model_copy(update={"rule": rule, "figures": {**status.figures, "recalibration": through}})


def _status(
    current: Performance | None,
    drift: list[DriftCheck],
    validation_auc: float | None,
    config: MonitoringConfig,
    stale: RecalibrationInfo | None,
) -> Status:
    figures = _figures(current, validation_auc)
    enough = current is not None and current.episodes >= config.min_ended
    if enough and current is not None:
        high = current.within_landmark_auc_ci[1]
        if high is not None and validation_auc is not None and high < validation_auc:
            rule = "within-session AUC interval entirely below the low end of the model's validation AUC interval"
            return Status(
                status="retrain", rule=f"{rule} (monitoring.min_ended={config.min_ended} met)", figures=figures
            )
        if _excludes_one(current.oe_ci):
            rule = f"O/E interval excludes 1 with at least monitoring.min_ended={config.min_ended} ended episodes"
            return Status(status="recalibrate", rule=rule, figures=figures)
    if stale is not None:
        rule = f"recalibration {stale.id} was fitted for model version {stale.model_version}, not the one served"
        figures |= {"recalibration": stale.id, "recalibration_model_version": stale.model_version}
        return Status(status="recalibrate", rule=rule, figures=figures)
    severe = [d for d in drift if d.drifted and d.psi is not None and d.psi >= config.retrain_psi]
    severe = [d for d in severe if any(part in d.what for part in INSTRUMENT_CHECKS)]
    if severe:
        figures |= {"drift": severe[0].what, "psi": severe[0].psi}
        return Status(
            status="retrain",
            rule=f"an instrument drifted with PSI >= monitoring.retrain_psi={config.retrain_psi}",
            figures=figures,
        )
    flagged = [d for d in drift if d.drifted]
    if flagged:
        figures |= {"drift": ", ".join(d.what for d in flagged)}
        return Status(status="watch", rule="drift flagged (monitoring.drift_psi, drift_alpha)", figures=figures)
    if current is not None and current.episodes >= config.min_ended_watch and _excludes_one(current.oe_ci):
        rule = (
            f"O/E interval excludes 1 on fewer than monitoring.min_ended={config.min_ended} ended episodes "
            f"(at least monitoring.min_ended_watch={config.min_ended_watch})"
        )
        return Status(status="watch", rule=rule, figures=figures)
    if current is not None and current.episodes < config.min_ended_watch:
        rule = f"fewer than monitoring.min_ended_watch={config.min_ended_watch} ended episodes: calibration not judged"
        return Status(status="ok", rule=rule, figures=figures)
    return Status(status="ok", rule="no rule met: calibration, discrimination and drift within bounds", figures=figures)
