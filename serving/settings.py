"""Service settings: the database, the model to serve, risk bands, keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dropout_risk.features.config import ProjectSettings
from dropout_risk.models.names import CHAMPION, model_uri
from dropout_risk.serving.risk import Band
from dropout_risk.serving.schemas import MAX_SESSIONS


class RiskBands(BaseModel):
    """Probability thresholds of the bands: below ``moderate`` is low, from ``high`` on is high."""

    model_config = ConfigDict(extra="forbid")

    moderate: float = Field(default=0.20, gt=0, lt=1)
    high: float = Field(default=0.40, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if not self.moderate < self.high:
            raise ValueError("bands.moderate must be below bands.high")
        return self

    def band(self, probability: float) -> Band:
        if probability >= self.high:
            return "high"
        return "moderate" if probability >= self.moderate else "low"


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_uri: str = model_uri(CHAMPION)
    poll_interval_seconds: float = Field(default=30.0, gt=0, description="how often the alias is checked")
    bands: RiskBands = RiskBands()
    page_size: int = Field(default=50, ge=1, le=500)
    max_page_size: int = Field(default=200, ge=1, le=1000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_sessions_per_score: int = Field(
        default=200, ge=1, le=MAX_SESSIONS, description="a longer history on POST /v1/score is refused (422)"
    )
    keep_alive_seconds: int = Field(default=5, ge=1, description="an idle connection is closed after this")
    max_concurrency: int = Field(default=200, ge=1, description="connections and requests at once; 503 beyond")
    rate_limit: float = Field(default=50.0, ge=0, description="requests a second per API key (429 beyond); 0: none")
    rate_limit_burst: int = Field(default=100, ge=1, description="requests an API key may send at once")
    rate_limit_sessions: int = Field(
        default=20,
        ge=1,
        description=(
            "POST /v1/score: a history of up to this many sessions counts as one request of the rate limit, "
            "a longer one as one per started block (200 sessions: 10 at the default)"
        ),
    )
    max_inflight_per_key: int = Field(
        default=2, ge=0, description="requests an API key may have in progress at once (429 beyond); 0: no cap"
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a request body must arrive whole within this (408 beyond)"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="a longer request body is refused (413)")
    recompute_interval_seconds: float = Field(
        default=5.0, ge=0, description="how often a swap of the served model is looked for to recompute current risks"
    )


class MonitoringConfig(BaseModel):
    """How ``dropout-risk monitor`` and ``GET /v1/monitoring`` judge a clinic (README, "Monitoring")."""

    model_config = ConfigDict(extra="forbid")

    min_ended: int = Field(
        default=100, ge=1, description="ended episodes served by the current model before its calibration is judged"
    )
    min_ended_watch: int = Field(
        default=30,
        ge=1,
        description="ended episodes before an O/E interval that excludes 1 counts as an early sign (watch)",
    )
    min_ended_logistic: int = Field(
        default=300, ge=1, description="ended episodes a recalibration of intercept and slope needs (--method logistic)"
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="of the O/E and AUC intervals")
    min_class: int = Field(default=10, ge=1, description="clients of each outcome a landmark needs to count in the AUC")
    drift_psi: float = Field(default=0.2, gt=0, description="PSI from which a distribution counts as drifted")
    retrain_psi: float = Field(default=0.5, gt=0, description="PSI of an instrument's drift that calls for retraining")
    drift_alpha: float = Field(
        default=0.01, gt=0, lt=1, description="significance of a drift test, shared over a clinic's tests (Bonferroni)"
    )
    missing_rate_change: float = Field(default=0.10, gt=0, lt=1, description="a missing rate that moved this much")
    min_drift_values: int = Field(
        default=100, ge=1, description="new values a distribution needs to be compared (10 per decile bin)"
    )
    refresh_seconds: float = Field(
        default=900.0, ge=0, description="how often the server recomputes its Prometheus gauges (0: only on request)"
    )


class ClinicCode(BaseModel):
    """A clinic's own code for an instrument's total score (``[[fhir.codes]]``), beside the registry's codes."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(description="the instrument's key (ors, srs, a declared one)")
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)


class FhirConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: list[ClinicCode] = Field(default_factory=list)


class CdsHooksClient(BaseModel):
    """A record system allowed to call the CDS service: its JWTs' issuer, its keys, and the clinic it speaks for."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    clinic: str = Field(min_length=1, description="the clinic (as named to keys create) whose clients it sees")
    store_observations: bool = Field(
        default=False, description="store prefetched Observations as sessions (default: score them only)"
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> CdsHooksClient:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError(f"cds_hooks client {self.issuer}: give exactly one of jwks_url and jwks")
        return self


class CdsHooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[CdsHooksClient] = Field(default_factory=list)
    # The service's own base URL as callers address it: a JWT's aud must be this URL's
    # /cds-services/dropout-risk (the specification's audience). Unset: taken from the request.
    base_url: str | None = None
    dashboard_url: str | None = Field(default=None, description="the dashboard's base URL for the card's link")
    max_token_age_seconds: int = Field(default=300, ge=1, description="a token issued longer ago is refused")
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    # Per issuer (a record system), as serving.rate_limit is per API key: 429 with Retry-After beyond it.
    rate_limit: float = Field(default=20.0, ge=0, description="hook calls a second per CDS client (issuer); 0: none")
    rate_limit_burst: int = Field(default=40, ge=1, description="hook calls a CDS client may send at once")


class WebhooksConfig(BaseModel):
    """Alerts to clinics' webhook endpoints (``POST /v1/webhooks``), delivered by a background worker."""

    model_config = ConfigDict(extra="forbid")

    band_rise: float = Field(
        default=0.10, gt=0, le=1, description="risk.band_raised also when the risk rises this much in one session"
    )
    allow_loopback_http: bool = Field(
        default=False, description="accept http:// targets on 127.0.0.1 / localhost (tests); otherwise https only"
    )
    timeout_seconds: float = Field(default=5.0, gt=0, description="a delivery attempt's timeout")
    first_retry_seconds: float = Field(default=1.0, gt=0, description="the wait before the first retry; doubles")
    max_retry_seconds: float = Field(default=600.0, gt=0, description="the longest wait between two attempts")
    give_up_after_seconds: float = Field(default=86_400.0, gt=0, description="then the delivery is failed")
    poll_seconds: float = Field(default=0.5, gt=0, description="how often the worker looks for due deliveries")


class ServingSettings(ProjectSettings):
    # Top level so the environment variables read DROPOUT_RISK_DATABASE_URL and DROPOUT_RISK_ADMIN_KEY.
    database_url: str = "sqlite:///dropout_risk.db"
    admin_key: SecretStr | None = None
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    fhir: FhirConfig = FhirConfig()
    cds_hooks: CdsHooksConfig = CdsHooksConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
