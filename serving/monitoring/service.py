"""The one monitoring function: ``dropout-risk monitor``, ``GET /v1/monitoring``, /ui/monitoring and the gauges."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.orm import Session

from dropout_risk.models.profile import ReferenceProfile
from dropout_risk.serving.model_holder import LoadedModel
from dropout_risk.serving.monitoring.data import ClinicRef, clinics, open_rows, recent_sessions, served_rows
from dropout_risk.serving.monitoring.drift import drift_checks
from dropout_risk.serving.monitoring.performance import by_version_month, performance
from dropout_risk.serving.monitoring.report import (
    ClinicMonitoring,
    Monitoring,
    OpenEpisodes,
    Performance,
    RecalibrationInfo,
)
from dropout_risk.serving.monitoring.status import clinic_status
from dropout_risk.serving.recalibration import newest_by_clinic
from dropout_risk.serving.settings import MonitoringConfig

SERVICE = "(all clinics)"


class UnknownClinic(LookupError):
    pass


@dataclass(frozen=True)
class ServedModelFacts:
    """What the monitor reads of the model being served (None: no model loaded)."""

    version: str | None
    validation_auc: float | None  # the low end of the validation within-session AUC's interval (else the point)
    profile: ReferenceProfile | None
    validation_auc_point: float | None = None  # the validation within-session AUC itself, for the report

    @classmethod
    def of(cls, loaded: LoadedModel | None) -> ServedModelFacts:
        if loaded is None:
            return cls(None, None, None)
        point = loaded.metrics.get("within_landmark_auc")
        # The validation interval's low end when the run logged one: "entirely below" both uncertainties.
        low = loaded.metrics.get("within_landmark_auc_ci_lo", point)
        return cls(
            loaded.version,
            float(low) if low is not None else None,
            loaded.profile,
            float(point) if point is not None else None,
        )


def _open(rows: pd.DataFrame) -> OpenEpisodes:
    probability = rows["probability"].astype(float)
    return OpenEpisodes(
        episodes=len(rows),
        expected_dropout_rate=float(probability.mean()) if len(rows) else None,
        expected_dropouts=float(probability.sum()),
        model_versions={str(k): int(v) for k, v in rows["model_version"].value_counts().sort_index().items()},
    )


def _since_recalibration(
    rows: pd.DataFrame, recalibration: RecalibrationInfo | None, model: ServedModelFacts, config: MonitoringConfig
) -> Performance | None:
    """The episodes every one of whose landmark risks went through the clinic's recalibration of the served model."""
    if recalibration is None or recalibration.model_version != model.version or not len(rows):
        return None
    through = (rows["recalibration"] == recalibration.id).fillna(False).groupby(rows["client"]).transform("all")
    chosen = rows[through.to_numpy(dtype=bool)]
    return performance(chosen, config) if len(chosen) else None


def _clinic(
    name: str,
    served: pd.DataFrame,
    ongoing: pd.DataFrame,
    sessions: pd.DataFrame | None,
    model: ServedModelFacts,
    config: MonitoringConfig,
    recalibration: RecalibrationInfo | None = None,
) -> ClinicMonitoring:
    current_rows = served[served["model_version"] == model.version]
    current = performance(current_rows, config) if len(current_rows) else None
    drift = drift_checks(model.profile, sessions, config) if model.profile is not None and sessions is not None else []
    stale = recalibration if recalibration is not None and recalibration.model_version != model.version else None
    since = _since_recalibration(current_rows, recalibration, model, config)
    # Risks served through the clinic's recalibration are judged on their own: the episodes before it
    # are what it corrected, and would keep the clinic at recalibrate.
    through = recalibration.id if recalibration is not None and stale is None else None
    judged = current if through is None else since
    return ClinicMonitoring(
        clinic=name,
        status=clinic_status(judged, drift, model.validation_auc, config, stale, through),
        recalibration=recalibration,
        current=current,
        since_recalibration=since,
        by_version_month=by_version_month(served, config),
        open=_open(ongoing),
        drift=drift,
    )


def monitor(
    db: Session,
    model: ServedModelFacts,
    config: MonitoringConfig,
    *,
    clinic_id: int | None = None,
    clinic_name: str | None = None,
    since: dt.date | None = None,
    whole_service: bool = False,
) -> Monitoring:
    """Per clinic (one, or all): realised performance by model version and month, open episodes, drift, status.

    ``whole_service`` adds every selected clinic together (the admin's view). Raises UnknownClinic.
    """
    chosen: list[ClinicRef] = clinics(db, clinic_id, clinic_name)
    if not chosen and (clinic_id is not None or clinic_name is not None):
        raise UnknownClinic("no such clinic")
    ids = [c.id for c in chosen]
    served, ongoing = served_rows(db, ids, since), open_rows(db, ids)
    sessions = recent_sessions(db, ids, since) if model.profile is not None else None
    recalibrations = {
        clinic: RecalibrationInfo.model_validate(row, from_attributes=True)
        for clinic, row in newest_by_clinic(db, ids).items()
    }
    reports = [
        _clinic(
            c.name,
            served[served["clinic_id"] == c.id],
            ongoing[ongoing["clinic_id"] == c.id],
            None if sessions is None else sessions[sessions["clinic_id"] == c.id],
            model,
            config,
            recalibrations.get(c.id),
        )
        for c in chosen
    ]
    return Monitoring(
        generated_at=dt.datetime.now(dt.UTC),
        since=since,
        model_version=model.version,
        validation_within_landmark_auc=model.validation_auc_point,
        validation_within_landmark_auc_ci_low=model.validation_auc,
        reference_profile=model.profile is not None,
        min_ended=config.min_ended,
        clinics=reports,
        service=_clinic(SERVICE, served, ongoing, sessions, model, config) if whole_service else None,
    )
