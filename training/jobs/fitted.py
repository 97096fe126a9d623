"""The chosen model: spec and curves from the training clients, candidates by grouped CV, calibrated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from dropout_risk.features.concepts import directions, model_columns
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import FeatureSpec, infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.training.fitting import CandidateResult, Selection, fit_calibrated, fit_candidates, select
from dropout_risk.training.jobs.prepare import PreparedData, with_last_session
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import grouped_folds

Progress = Callable[[str], None]


@dataclass
class Fitted:
    """The chosen model and what it was fitted and will be evaluated on."""

    spec: FeatureSpec
    features: pd.DataFrame  # every ended client's landmark rows, with last_session
    train_rows: pd.DataFrame
    test_rows: pd.DataFrame
    columns: list[str]
    candidates: dict[str, CandidateResult]
    selection: Selection
    model: DropoutRiskModel
    folds: list  # the client-grouped folds of the training rows


def fit_chosen(prep: PreparedData, settings: TrainingSettings, say: Progress) -> Fitted:
    """Spec and curves from the training clients; candidates by grouped CV; the chosen one calibrated."""
    config = settings.training
    train_sessions = prep.sessions[prep.sessions["client_id"].isin(prep.train_ids)]
    train_episodes = prep.episodes[prep.episodes["client_id"].isin(prep.train_ids)]
    spec = infer_spec(train_sessions, train_episodes, settings.registry(), settings.features)
    trajectories = fit_expected_trajectories(train_sessions, spec)
    features = with_last_session(build_features(prep.sessions, prep.episodes, spec, trajectories), prep.sessions)
    is_test = features["client_id"].isin(prep.test_ids).to_numpy()
    train_rows, test_rows = features[~is_test].reset_index(drop=True), features[is_test].reset_index(drop=True)
    y_train = train_rows["label"].to_numpy(dtype=int)
    columns = model_columns(spec, config.feature_groups)

    folds = grouped_folds(train_rows, folds=config.folds, seed=config.seed)
    candidates = fit_candidates(
        train_rows, y_train, columns, folds, config, progress=say, directions=directions(spec, columns)
    )
    selection = select(candidates, config.candidates, config.selection_margin)
    chosen = selection.chosen
    say(f"calibrating {chosen.kind} on out-of-fold predictions")
    estimator, calibrator = fit_calibrated(chosen, train_rows, y_train, config.calibration)
    model = DropoutRiskModel(
        spec=spec,
        trajectories=trajectories,
        kind=chosen.kind,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
        metadata={"chosen": chosen.kind, "params": chosen.params},
    ).fit_reference(train_rows)
    return Fitted(spec, features, train_rows, test_rows, columns, candidates, selection, model, folds)
