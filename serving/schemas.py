"""Request and response bodies of the /v1 API (the risk inside them is ``serving.risk``'s)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

from dropout_risk.features.session_rules import DATE_OUT_OF_RANGE, FIRST_DATE, LAST_DATE
from dropout_risk.serving.covariates import covariate_problems, is_valid_text
from dropout_risk.serving.risk import Band, HistoryItem, Risk
from dropout_risk.serving.tables import Status


def _date_text(value: object) -> object:
    # pydantic would read a number as a Unix timestamp (0 -> 1970-01-01); a session date is ISO text.
    if isinstance(value, dt.date | str):
        return value
    raise PydanticCustomError("date_type", "Input should be a valid date (YYYY-MM-DD)")


def _date_in_range(value: dt.date) -> dt.date:
    # Beyond pandas' nanosecond timestamps (1677-2262) a date was scored wrongly; the range is the data contract's.
    if not FIRST_DATE <= value <= LAST_DATE:
        raise PydanticCustomError("date_range", DATE_OUT_OF_RANGE)
    return value


def _valid_text(value: str | None) -> str | None:
    if value is not None and not is_valid_text(value):
        raise PydanticCustomError("unicode", "must be valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_valid_text)]
# An instrument key with a lone surrogate was a 500: it cannot be written into a JSON answer or a log.
InstrumentKey = Text
Score = Annotated[float, Field(allow_inf_nan=False)]
# The JSON API takes JSON numbers only: true is not a score of 1, nor "12" a session number.
JsonScore = Annotated[float, Strict(), Field(allow_inf_nan=False)]
JsonInt = Annotated[int, Strict()]
SessionDate = Annotated[dt.date, BeforeValidator(_date_text), AfterValidator(_date_in_range)]
ClientId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@~-]+$")]
MAX_SESSIONS = 500


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_number: int = Field(ge=1, le=MAX_SESSIONS)
    session_date: SessionDate
    scores: dict[InstrumentKey, Score] = Field(default_factory=dict, description="instrument key -> score")
    missed_since_last: int | None = Field(default=None, ge=0, le=365)


class SessionBody(SessionIn):
    """A session as the JSON API takes it: the same fields, numbers as JSON numbers (no lax coercion)."""

    session_number: JsonInt = Field(ge=1, le=MAX_SESSIONS)
    scores: dict[InstrumentKey, JsonScore] = Field(default_factory=dict, description="instrument key -> score")
    missed_since_last: JsonInt | None = Field(default=None, ge=0, le=365)


class SessionOut(SessionIn):
    pass


class RecordedSession(BaseModel):
    client_id: str
    session: SessionOut
    risk: Risk


class ClientRisk(BaseModel):
    client_id: str
    status: Status
    risk: Risk | None
    history: list[HistoryItem]


# Finite only: NaN or Infinity (Python's JSON parser takes both) stored in a covariate broke every later score.
Covariate = str | Annotated[float, Field(allow_inf_nan=False)] | int | bool | None


def _valid_covariates(value: dict[str, Covariate]) -> dict[str, Covariate]:
    # A lone surrogate was stored and then broke every read of the client and every export;
    # a covariate named client_id or status overwrote that column of the exported episodes.
    problem = next(covariate_problems(value), None)
    if problem is not None:
        raise PydanticCustomError("covariate", problem)
    return value


Covariates = Annotated[dict[str, Covariate], AfterValidator(_valid_covariates)]


class ClientUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    ended_on: SessionDate | None = Field(
        default=None, description="the day an ended episode (completed or dropout) ended; today if not given"
    )
    age: Annotated[float, Strict(), Field(allow_inf_nan=False)] | None = Field(default=None, ge=0, le=120)
    gender: Text | None = Field(default=None, max_length=50)
    therapist_id: Text | None = Field(default=None, max_length=200)
    covariates: Covariates = Field(default_factory=dict)


class ClientOut(BaseModel):
    client_id: str
    status: Status
    covariates: dict[str, Covariate]
    sessions: int
    last_session_date: dt.date | None
    probability: float | None
    band: Band | None
    model_version: str | None
    ended_on: dt.date | None = None


class CaseloadItem(BaseModel):
    client_id: str
    status: Status
    probability: float | None
    band: Band | None
    model_version: str | None
    session_number: int | None
    last_session_date: dt.date | None


class Caseload(BaseModel):
    items: list[CaseloadItem]
    page: int
    page_size: int
    total: int
    order: Literal["risk", "recent", "client_id"]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessions: list[SessionBody] = Field(min_length=1, max_length=MAX_SESSIONS)
    covariates: Covariates = Field(default_factory=dict)


class ScoreResponse(BaseModel):
    risk: Risk
    history: list[HistoryItem]


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None
    kind: str
    trained_at: str | None
    loaded_at: str
    run_id: str | None
    max_landmark: int
    instruments: list[str]
    metrics: dict[str, float]


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str | list[Problem]
