"""A small simulated clinic as the model tests need it: validated tables, a spec, curves, landmark rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import validate_contract
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec, infer_spec
from dropout_risk.features.trajectories import ExpectedTrajectories, fit_expected_trajectories
from dropout_risk.models.calibration import Method, ProbabilityCalibrator
from dropout_risk.models.logodds import logit
from dropout_risk.training.simulation.cohort import Cohort


@dataclass(frozen=True)
class Clinic:
    sessions: pd.DataFrame  # typed, validated; every client (ongoing included)
    episodes: pd.DataFrame
    spec: FeatureSpec
    trajectories: ExpectedTrajectories
    features: pd.DataFrame  # landmark rows of every client
    train: pd.DataFrame  # landmark rows of ended episodes (label known), RangeIndex
    y: np.ndarray  # train labels, int


def build_clinic(cohort: Cohort) -> Clinic:
    """Validate the cohort, infer its spec and curves, and build every client's landmark rows."""
    result = validate_contract(cohort.sessions, cohort.episodes, default_registry())
    assert result.ok, result.problems[:5]
    sessions, episodes = result.sessions, result.episodes
    spec = infer_spec(sessions, episodes, default_registry(), FeatureConfig())
    trajectories = fit_expected_trajectories(sessions, spec)
    features = build_features(sessions, episodes, spec, trajectories)
    train = features[features["label"].notna()].reset_index(drop=True)
    y = train["label"].to_numpy(dtype=int)
    assert 0 < y.mean() < 1
    assert spec.categorical_covariates, "the simulated clinic should have a categorical covariate (gender)"
    return Clinic(sessions, episodes, spec, trajectories, features, train, y)


# A clinic of a few hundred clients has under 50 dropouts per session (the production minimum):
# 8 lets several landmarks have intercepts of their own, so the tests cover them.
TEST_MIN_CLASS_ROWS = 8
# The simulated model is calibrated within each session, so its intercepts would shrink to the pooled
# one and its slope be near 1: the calibrator learns from raw risks pushed up at odd sessions and down
# at even ones, and over-spread, so the tests cover distinct intercepts and a slope that rescales.
SKEW = 0.8
SPREAD = 1.3


def landmark_calibrator(method: Method, raw: np.ndarray, y: np.ndarray, rows: pd.DataFrame) -> ProbabilityCalibrator:
    """A calibrator with distinct intercepts at 2+ landmarks (isotonic: pooled), fitted at the landmarks of ``rows``."""
    landmark = rows["landmark"].to_numpy(dtype=float)
    skewed = expit(SPREAD * logit(raw) + np.where(landmark % 2 == 1, SKEW, -SKEW))
    calibrator = ProbabilityCalibrator(method, min_class_rows=TEST_MIN_CLASS_ROWS).fit(skewed, y, landmark)
    intercepts = calibrator.landmark_intercepts_.values()
    assert method == "isotonic" or (len(intercepts) >= 2 and max(intercepts) - min(intercepts) > 0.5)
    return calibrator
