"""Settings for ``dropout-risk compare``: feature-set comparisons on shared client-grouped folds.

The ``[compare]`` section of the config file::

    [compare]
    folds = 5                  # client-grouped, outcome-stratified outer folds
    repeats = 1                # repeated CV: fold seeds are seed, seed + 1, ...
    bootstrap_resamples = 200  # client bootstrap for per-set CIs
    pair_resamples = 2000      # paired client bootstrap for the AUC differences

    calibrate = true           # recalibrate each held-out fold on its training rows' OOF predictions

    [compare.feature_sets]     # sets you can name in --feature-sets
    scores = ["outcome", "alliance"]                 # group names ...
    srs_core = ["srs_current", "srs_min", "srs_any_drop"]  # ... and/or feature columns
    session_only = ["landmark"]                      # the session number alone: a baseline

Unset, ``model`` is logistic below ``evaluation.small_data_clients`` ended episodes (1,000)
and LightGBM above. Without ``--feature-sets`` or config sets, the default sets skip the
groups the data have no features for (saying so) and start with ``landmark``.

A set's entries are feature group names (``attendance``, ``outcome``, ``alliance``,
``covariates``) and/or feature column names of the landmark table; the landmark
number is in every set. Names are checked against the data when the comparison
runs (which columns exist depends on the instruments and covariates present).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dropout_risk.features.spec import GROUP_NAMES
from dropout_risk.training.settings import TrainingSettings

SET_SEPARATOR = ","
GROUP_JOINER = "+"


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="named feature sets: lists of feature group names and/or feature column names"
    )
    folds: int = Field(default=5, ge=2, le=20, description="client-grouped outer CV folds")
    repeats: int = Field(default=1, ge=1, le=50, description="repeats of the grouped CV (OOF risks averaged)")
    bootstrap_resamples: int = Field(default=200, ge=20, description="client-bootstrap resamples for CIs")
    pair_resamples: int = Field(
        default=2000,
        ge=100,
        description="paired client-bootstrap resamples per pair of sets (enough for Holm-adjusted p-values)",
    )
    calibrate: bool = Field(
        default=True,
        description="recalibrate each held-out fold (training.calibration) on its training rows' OOF predictions",
    )
    model: Literal["lightgbm", "logistic"] | None = Field(
        default=None,
        description="the model for every set; unset: logistic below evaluation.small_data_clients ended episodes, "
        "else lightgbm",
    )
    n_jobs: int = Field(default=-1, description="threads fitting folds in parallel (-1 = every core)")
    seed: int = 0
    experiment: str = "dropout-risk-compare"

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("n_jobs must be -1 (every core) or a positive number of threads")
        return value

    @model_validator(mode="after")
    def _set_names(self) -> CompareConfig:
        for name, entries in self.feature_sets.items():
            if not name.strip() or name != name.strip():
                raise ValueError(f"feature set name {name!r} is empty or has surrounding spaces")
            if SET_SEPARATOR in name or GROUP_JOINER in name:
                raise ValueError(f"feature set name {name!r} may not contain '{SET_SEPARATOR}' or '{GROUP_JOINER}'")
            if name in GROUP_NAMES:
                raise ValueError(f"feature set name {name!r} is a feature group name; choose another")
            if not entries:
                raise ValueError(f"feature set {name!r} lists no groups or features")
            blank = [e for e in entries if not e.strip()]
            if blank:
                raise ValueError(f"feature set {name!r} has an empty entry")
        return self


class CompareSettings(TrainingSettings):
    """Training settings (features, instruments, ``training.artifact_location``...) plus ``[compare]``."""

    compare: CompareConfig = CompareConfig()
