"""A client's risk as the service gives it, typed from scoring to storage to the response.

``serving.scoring`` builds these; the /v1 responses carry them as they are
(``serving.schemas`` uses these classes, so the OpenAPI names are theirs); each
recorded session stores its ``Risk`` as JSON (``sessions.risk``), written by
``Risk.stored`` and read back by ``Risk.from_stored``. The stored keys are the
field names below: changing one is a migration of stored rows, not a refactor.
The classes carry comments, not docstrings: pydantic would put a docstring in
the OpenAPI schema, which is a contract too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Band = Literal["low", "moderate", "high"]


# One clinical concept's part in a risk, in plain words: ``feature`` names the concept ("alliance",
# "outcome", "attendance" or "covariates"), ``contribution`` its log-odds against the average client
# at the same session (positive raises the risk). Risks stored before concepts name single features.
class Factor(BaseModel):
    feature: str
    contribution: float
    effect: Literal["raises", "lowers"]
    text: str


# One step of the move from the previous session's risk to this one: coming back ("returned"),
# "alliance", "outcome" or "attendance" brought up to date in turn. ``points``: percentage points.
class Change(BaseModel):
    concept: Literal["returned", "alliance", "outcome", "attendance"]
    points: float
    text: str


# A clinical flag that fires.
class FlagOut(BaseModel):
    flag: str
    text: str


# A next step for a flag (or for a high risk) and the published work it comes from.
class SuggestionOut(BaseModel):
    flag: str
    text: str
    source: str


class Risk(BaseModel):
    probability: float = Field(ge=0, le=1)
    band: Band
    model_version: str
    landmark: int
    session_number: int
    factors: list[Factor]
    flags: list[FlagOut]
    suggestions: list[SuggestionOut]
    missing_inputs: list[str] = Field(description="model instruments not given at this session (scored as missing)")
    changes: list[Change] = Field(
        default_factory=list,
        description=(
            "what moved the risk since the previous session, one concept at a time (percentage points; they sum "
            "to the change in risk); empty at session 1 and past the model's last landmark"
        ),
    )
    recalibration: int | None = Field(
        default=None,
        description="the id of the clinic's recalibration this risk went through (`recalibrate`); null: none",
    )

    def stored(self) -> dict[str, Any]:
        """The JSON stored with the session (the same keys and values the API returns)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Risk:
        return cls.model_validate(stored)


# The risk after one session.
class HistoryItem(BaseModel):
    session_number: int
    session_date: dt.date
    probability: float
    band: Band
