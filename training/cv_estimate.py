"""Small-data mode: the estimate from repeated client-grouped cross-validation instead of a holdout.

A 20% holdout of a few hundred clients is 13-35 clients: its AUC moves by 0.15 with the seed. Below
``evaluation.small_data_clients`` ended episodes no client is set aside: every client is scored
out of fold, ``evaluation.cv_repeats`` times over ``evaluation.cv_folds`` stratified, client-grouped
folds, and the metrics and their client-bootstrap CIs are computed on those out-of-fold risks
(averaged over the repeats, one row per client and session). Everything a fold's risk depends on
is fitted on that fold's training clients only: the feature spec, the expected-trajectory curves,
each candidate, its calibrator (on inner out-of-fold predictions) and the baselines. The model
that is registered is fitted on all clients afterwards, as in holdout mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from dropout_risk.features.concepts import directions, model_columns
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.models.estimators import make_candidate
from dropout_risk.training.baselines import reference_baselines
from dropout_risk.training.fitting import calibrated_risk
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import grouped_folds

Progress = Callable[[str], None]
INNER_FOLDS = 3  # calibration inside an outer fold: its training clients, split again


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold risks of every model and baseline, per repeat and averaged over the repeats."""

    oof: pd.DataFrame  # client_id, session_number, fold, repeat, label, one column per model
    scored: pd.DataFrame  # client_id, landmark, label, one column per model: the mean over the repeats
    not_applicable: dict[str, str]  # baseline -> why it does not apply to these data


def cross_validate(
    sessions: pd.DataFrame,
    episodes: pd.DataFrame,
    settings: TrainingSettings,
    params: dict[str, dict],
    say: Progress,
) -> CrossValidated:
    """Every ended client scored out of fold, ``cv_repeats`` x ``cv_folds`` times, by every candidate."""
    evaluation = settings.evaluation
    clients = _clients(episodes)
    parts, not_applicable = [], {}
    for repeat in range(evaluation.cv_repeats):
        folds = grouped_folds(clients, folds=evaluation.cv_folds, seed=settings.training.seed + repeat)
        for fold, (train_idx, _valid) in enumerate(folds):
            say(f"cross-validation: repeat {repeat + 1} of {evaluation.cv_repeats}, fold {fold + 1}")
            train_ids = set(clients["client_id"].iloc[train_idx])
            part, skipped = _score_fold(sessions, episodes, train_ids, settings, params)
            parts.append(part.assign(fold=fold, repeat=repeat))
            not_applicable.update(skipped)
    oof = pd.concat(parts, ignore_index=True).rename(columns={"landmark": "session_number"})
    models = [c for c in oof.columns if c not in ("client_id", "session_number", "label", "fold", "repeat")]
    models = [m for m in models if m not in not_applicable]
    columns = ["client_id", "session_number", "fold", "repeat", "label", *models]
    return CrossValidated(oof[columns], mean_over_repeats(oof, models), not_applicable)


def mean_over_repeats(oof: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """One row per client and session (``landmark``): its label and each model's risk averaged over the repeats."""
    averaged = oof.groupby(["client_id", "session_number"], sort=True).agg(
        {"label": "first", **dict.fromkeys(models, "mean")}
    )
    return averaged.reset_index().rename(columns={"session_number": "landmark"})


def _clients(episodes: pd.DataFrame) -> pd.DataFrame:
    ids = episodes["client_id"].to_numpy()
    return pd.DataFrame({"client_id": ids, "label": (episodes["status"] == "dropout").to_numpy(dtype=float)})


def _score_fold(
    sessions: pd.DataFrame,
    episodes: pd.DataFrame,
    train_ids: set,
    settings: TrainingSettings,
    params: dict[str, dict],
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The validation clients' risks from every candidate and baseline fitted on the training clients."""
    config = settings.training
    in_train = sessions["client_id"].isin(train_ids)
    spec = infer_spec(
        sessions[in_train], episodes[episodes["client_id"].isin(train_ids)], settings.registry(), settings.features
    )
    trajectories = fit_expected_trajectories(sessions[in_train], spec)
    features = build_features(sessions, episodes, spec, trajectories)
    is_train = features["client_id"].isin(train_ids).to_numpy()
    train, valid = features[is_train].reset_index(drop=True), features[~is_train].reset_index(drop=True)
    y = train["label"].to_numpy(dtype=int)
    columns = model_columns(spec, config.feature_groups)
    inner = grouped_folds(train, folds=INNER_FOLDS, seed=config.seed)
    out = valid[["client_id", "landmark", "label"]].copy()
    # The logistic candidate's column is the `logistic` baseline: it is always cross-validated.
    for kind in dict.fromkeys(["logistic", *config.candidates]):
        template = make_candidate(kind, train, columns, directions(spec, columns), **params.get(kind, {}))
        out[kind] = calibrated_risk(template, train, y, inner, config.calibration, valid)
    skipped = {}
    for baseline in reference_baselines(train, valid, spec, inner, config.calibration):
        if baseline.risk is None:
            skipped[baseline.name] = baseline.not_applicable or "not applicable"
        else:
            out[baseline.name] = baseline.risk
    return out, skipped
