"""Training data in: validated files, ended episodes, the split by client and the evaluation mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from dropout_risk.features.contract import ContractError
from dropout_risk.training.data import load_contract, read_table
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import SplitKind, check_enough_clients, check_enough_test_clients, holdout_clients


class TrainingDataError(ValueError):
    """Data that passed the contract but cannot train a model (one class, too few clients)."""


EvaluationMode = Literal["holdout", "cv"]


@dataclass
class PreparedData:
    sessions: pd.DataFrame
    episodes: pd.DataFrame
    train_ids: np.ndarray
    test_ids: np.ndarray  # empty in small-data mode: every client is scored out of fold instead
    n_ongoing: int
    mode: EvaluationMode = "holdout"
    mode_reason: str = ""


def prepare(
    sessions_path: Path,
    episodes_path: Path,
    settings: TrainingSettings,
    split: SplitKind,
    evaluation: EvaluationMode | None,
) -> PreparedData:
    data = load_contract(sessions_path, episodes_path, settings.registry())
    if not data.ok:
        raise ContractError(data.problems)
    ended = data.episodes[data.episodes["status"] != "ongoing"]
    n_ongoing = len(data.episodes) - len(ended)
    labels = (ended["status"] == "dropout").astype(float)
    if labels.empty:  # every episode ongoing: the outcome of none is known yet
        raise TrainingDataError("no ended episodes: a model needs both dropout and completed episodes")
    if labels.nunique() < 2:
        only = "dropout" if labels.iloc[0] == 1 else "completed"
        raise TrainingDataError(
            f"every ended episode has the same status ({only}): a model needs both dropout and completed episodes"
        )
    config = settings.training
    # Enough for every fold and for a test set beside them.
    check_enough_clients(
        labels, folds=config.folds, test_set=True, min_per_fold=config.min_clients_per_fold, what="ended episodes"
    )
    sessions = data.sessions[data.sessions["client_id"].isin(ended["client_id"])].reset_index(drop=True)
    firsts = sessions.groupby("client_id", sort=True)["session_date"].min()
    clients = pd.DataFrame(
        {
            "client_id": firsts.index,
            "first_date": firsts.to_numpy(),
            "label": labels.set_axis(ended["client_id"]).loc[firsts.index].to_numpy(),
        }
    )
    mode, reason = evaluation_mode(len(clients), settings, evaluation)
    if mode == "cv":
        ids = np.sort(clients["client_id"].to_numpy())
        return PreparedData(sessions, ended.reset_index(drop=True), ids, ids[:0], n_ongoing, mode, reason)
    train_ids, test_ids = holdout_clients(clients, fraction=config.test_fraction, kind=split, seed=config.seed)
    by_client = clients.set_index("client_id")["label"]
    check_enough_clients(
        by_client.loc[train_ids], folds=config.folds, min_per_fold=config.min_clients_per_fold, what="training clients"
    )
    check_enough_test_clients(
        by_client.loc[test_ids], min_clients=config.min_clients_per_fold, fraction=config.test_fraction
    )
    return PreparedData(sessions, ended.reset_index(drop=True), train_ids, test_ids, n_ongoing, mode, reason)


def evaluation_mode(
    n_ended: int, settings: TrainingSettings, asked: EvaluationMode | None
) -> tuple[EvaluationMode, str]:
    """Holdout or repeated cross-validation (small-data mode), and why, in words for the report."""
    threshold = settings.evaluation.small_data_clients
    if asked is not None:
        return asked, f"asked for (--evaluation {asked}) with {n_ended} ended episodes"
    if n_ended < threshold:
        return "cv", (
            f"{n_ended} ended episodes, below evaluation.small_data_clients ({threshold}): a holdout would be a few "
            "dozen clients, so every client is scored out of fold by repeated cross-validation instead"
        )
    return "holdout", f"{n_ended} ended episodes, at least evaluation.small_data_clients ({threshold})"


def with_last_session(features: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    last = sessions.groupby("client_id")["session_number"].max().rename("last_session")
    return features.join(last, on="client_id")


def data_summary(prep: PreparedData, digests: dict[str, str]) -> dict:
    dates = prep.sessions.groupby("client_id")["session_date"].min()
    return {
        "clients": int(len(prep.episodes)),
        "sessions": int(len(prep.sessions)),
        "ongoing_excluded": prep.n_ongoing,
        "dropout_rate": float((prep.episodes["status"] == "dropout").mean()),
        "train_clients": int(len(prep.train_ids)),
        "test_clients": int(len(prep.test_ids)),
        "first_date": str(dates.min().date()),
        "last_date": str(dates.max().date()),
        "sessions_digest": digests["sessions"],
        "episodes_digest": digests["episodes"],
    }


def read_truth(path: Path) -> pd.DataFrame:
    truth = read_table(path)
    missing = {"client_id", "session_number", "true_risk"} - set(truth.columns)
    if missing:
        raise TrainingDataError(f"{path}: truth file lacks column(s) {', '.join(sorted(missing))}")
    return pd.DataFrame(
        {
            "client_id": truth["client_id"].astype("string"),
            "session_number": pd.to_numeric(truth["session_number"]).astype("int64"),
            "true_risk": pd.to_numeric(truth["true_risk"]).astype(float),
        }
    )


def with_truth(scored: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The scored rows with the simulator's ``true_risk`` at each landmark."""
    scored = scored.merge(
        truth,
        left_on=["client_id", "landmark"],
        right_on=["client_id", "session_number"],
        how="left",
        validate="one_to_one",
    ).drop(columns="session_number")
    if scored["true_risk"].isna().any():
        raise TrainingDataError("the truth file has no true_risk for some scored sessions")
    return scored
