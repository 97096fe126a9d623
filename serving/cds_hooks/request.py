"""The hook request's shape (CDS Hooks 2.0): only what the service reads is checked; the rest is allowed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dropout_risk.serving.schemas import ClientId


class PatientViewContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    patientId: ClientId  # noqa: N815  (the specification's name)
    userId: str | None = None  # noqa: N815
    encounterId: str | None = None  # noqa: N815


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    hook: str = Field(pattern="^patient-view$")
    hookInstance: str = Field(min_length=1)  # noqa: N815
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None
