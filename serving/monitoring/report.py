"""What the monitor reports: the JSON of ``GET /v1/monitoring`` and ``dropout-risk monitor --report``.

Aggregates only: counts, rates and statistics per clinic, model version and month, never a
client's identifier, scores or risk. Names here are contracts (the API's JSON and the report file).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

StatusName = Literal["ok", "watch", "recalibrate", "retrain"]
STATUS_LEVEL: dict[str, int] = {"ok": 0, "watch": 1, "recalibrate": 2, "retrain": 3}


class CalibrationBin(BaseModel):
    low: float
    high: float
    rows: int
    mean_risk: float
    observed_rate: float


class Performance(BaseModel):
    episodes: int = Field(description="ended episodes behind these figures")
    dropouts: int
    rows: int = Field(description="risks served at landmark sessions (one per episode and session)")
    observed: float
    expected: float
    oe: float | None = Field(description="observed over expected dropouts, over the risks served")
    oe_ci: list[float | None]
    calibration_slope: float | None
    calibration_intercept: float | None
    ece: float | None
    within_landmark_auc: float | None
    within_landmark_auc_ci: list[float | None]
    auc_landmarks: list[int]
    calibration_bins: list[CalibrationBin]


class PerformanceGroup(BaseModel):
    model_version: str
    month: str = Field(description="calendar month the episodes ended (YYYY-MM), or 'unknown' (ended before 0004)")
    performance: Performance


class OpenEpisodes(BaseModel):
    episodes: int
    expected_dropout_rate: float | None = Field(description="mean current risk of the ongoing episodes")
    expected_dropouts: float
    model_versions: dict[str, int] = Field(description="ongoing episodes by the model version of their current risk")


class DriftCheck(BaseModel):
    what: str = Field(description="e.g. 'ors intake', 'ors session 3', 'session spacing', 'served risk'")
    measure: Literal["distribution", "missing_rate"]
    n: int
    psi: float | None = None
    reference: float | None = Field(default=None, description="missing_rate: the training share missing")
    current: float | None = Field(default=None, description="missing_rate: the share missing now")
    p_value: float
    drifted: bool


class Status(BaseModel):
    status: StatusName
    rule: str = Field(description="the rule that set the status, in words")
    figures: dict[str, float | int | str | None] = Field(description="the figures the rule read")


class RecalibrationInfo(BaseModel):
    id: int
    model_version: str
    method: str
    intercept: float
    slope: float
    created_at: dt.datetime


class ClinicMonitoring(BaseModel):
    clinic: str
    status: Status
    recalibration: RecalibrationInfo | None = Field(
        default=None, description="the clinic's newest recalibration not reverted (of any model version)"
    )
    current: Performance | None = Field(description="ended episodes, risks served by the model being served")
    since_recalibration: Performance | None = Field(
        default=None,
        description="ended episodes whose risks all went through ``recalibration`` (when it is of the served model)",
    )
    by_version_month: list[PerformanceGroup]
    open: OpenEpisodes
    drift: list[DriftCheck]


class Monitoring(BaseModel):
    generated_at: dt.datetime
    since: dt.date | None
    model_version: str | None = Field(description="the model being served: status and drift are judged against it")
    validation_within_landmark_auc: float | None = Field(
        description="the served model's within-session AUC at validation"
    )
    validation_within_landmark_auc_ci_low: float | None = Field(
        description="the low end of its 95% interval: the retrain rule compares a clinic's interval with it"
    )
    reference_profile: bool = Field(description="whether the served model carries a reference profile (drift)")
    min_ended: int
    clinics: list[ClinicMonitoring]
    service: ClinicMonitoring | None = Field(default=None, description="every clinic together (admin key only)")
