"""Settings for training, model selection, calibration and the promotion gate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dropout_risk.features.config import ProjectSettings


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="share of clients held out for test")
    folds: int = Field(default=5, ge=2, le=20, description="client-grouped CV folds for selection and calibration")
    min_clients_per_fold: int = Field(default=5, ge=1, description="each class needs this many clients per fold")
    candidates: list[Literal["logistic", "lightgbm"]] = ["logistic", "lightgbm"]
    # Which feature groups the model may use (e.g. drop "covariates" to keep age and gender out).
    feature_groups: list[Literal["attendance", "outcome", "alliance", "covariates"]] = [
        "attendance",
        "outcome",
        "alliance",
        "covariates",
    ]
    # A booster must beat the regularised logistic model by this much CV AUC to be chosen:
    # on small clinic datasets the simpler model generalises better, and ties go to it.
    selection_margin: float = Field(
        default=0.0,
        ge=0,
        description=(
            "a booster must beat logistic's within-session CV AUC by more than this plus one standard error of "
            "the paired fold differences"
        ),
    )
    tuning_trials: int = Field(default=0, ge=0, description="optuna trials for LightGBM (0 = defaults only)")
    logistic_c: float = Field(default=0.1, gt=0)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    bootstrap_resamples: int = Field(default=200, ge=20)
    alert_top_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="alert lead time: the threshold flags this share of test rows"
    )
    experiment: str = "dropout-risk"
    # Where a new experiment keeps its artifacts (None: MLflow's default, ./mlruns beside the store).
    artifact_location: str | None = None


class GateConfig(BaseModel):
    """The promotion gate: a challenger replaces the champion only inside these bounds."""

    model_config = ConfigDict(extra="forbid")

    max_auc_drop: float = Field(
        default=0.02,
        ge=0,
        description=(
            "the lower 95% bound of the challenger's within-session AUC minus the champion's (paired bootstrap on "
            "the same test clients) must lie above minus this"
        ),
    )
    slope_min: float = 0.8
    slope_max: float = 1.2
    max_ece: float = 0.05
    max_monotonicity_violation: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description=(
            "largest share of held-out histories whose risk may fall when the latest session is made worse "
            "(alliance or outcome 5 points worse, one more missed appointment, with or without a week's delay)"
        ),
    )


class EvaluationConfig(BaseModel):
    """How models are judged: which landmarks the within-session AUC averages over."""

    model_config = ConfigDict(extra="forbid")

    min_class_clients: int = Field(
        default=10,
        ge=1,
        description=(
            "a landmark enters the within-session AUC only when dropouts and completers each have this many "
            "clients there; the others are listed with their reason"
        ),
    )
    small_data_clients: int = Field(
        default=1000,
        ge=0,
        description=(
            "below this many ended episodes the data count as small: train estimates performance by repeated "
            "client-grouped cross-validation on every client instead of a holdout (train --evaluation overrides), "
            "and compare defaults to the logistic model (a booster overfits there)"
        ),
    )
    cv_folds: int = Field(default=5, ge=2, le=20, description="small-data mode: client-grouped folds per repeat")
    cv_repeats: int = Field(default=5, ge=1, le=50, description="small-data mode: repeats, each with new folds")


class TrainingSettings(ProjectSettings):
    training: TrainingConfig = TrainingConfig()
    gate: GateConfig = GateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
