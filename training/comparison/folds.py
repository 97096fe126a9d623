"""The comparison's data and its shared folds: every feature set is fitted and scored on these rows.

Expected trajectories are refitted on each fold's training clients: fitted on
everyone, a held-out client's own scores would shape the curve it is judged
against, flattering exactly the outcome sets being compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dropout_risk.features.contract import ContractError
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import LANDMARK, FeatureSpec, infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.training.compare_settings import CompareSettings
from dropout_risk.training.comparison.errors import CompareDataError
from dropout_risk.training.data import load_contract
from dropout_risk.training.splits import check_enough_clients, grouped_folds


@dataclass
class ComparisonData:
    sessions: pd.DataFrame  # sessions of ended episodes
    episodes: pd.DataFrame  # ended episodes
    n_ongoing: int
    spec: FeatureSpec
    keep: np.ndarray  # rows of build_features(...) at the chosen landmarks
    rows: pd.DataFrame  # client_id, landmark, label of the kept rows (RangeIndex)
    landmarks: tuple[int, ...]


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray  # row positions of the training clients
    valid: np.ndarray  # row positions of the held-out clients
    frame: pd.DataFrame  # features with this fold's trajectories


def load_data(
    sessions_path: Path,
    episodes_path: Path,
    settings: CompareSettings,
    landmarks: tuple[int, ...] | None,
    warnings: list[str],
) -> ComparisonData:
    """Validated ended episodes, their spec, and the landmark rows to compare on (``warnings`` gets notes)."""
    data = load_contract(sessions_path, episodes_path, settings.registry())
    if not data.ok:
        raise ContractError(data.problems)
    ended = data.episodes[data.episodes["status"] != "ongoing"].reset_index(drop=True)
    n_ongoing = len(data.episodes) - len(ended)
    if (ended["status"] == "dropout").nunique() < 2:
        raise CompareDataError(
            "every ended episode has the same status: comparing predictors needs both dropout and completed episodes"
        )
    sessions = data.sessions[data.sessions["client_id"].isin(ended["client_id"])].reset_index(drop=True)
    max_landmark = max(landmarks) if landmarks else settings.features.max_landmark
    # Row k's features use sessions <= k only, so building up to the last landmark asked for is exact.
    config = settings.features.model_copy(update={"max_landmark": max_landmark})
    spec = infer_spec(sessions, ended, settings.registry(), config)
    landmarks = landmarks or tuple(range(1, max_landmark + 1))
    base = build_features(sessions, ended, spec, fit_expected_trajectories(sessions, spec))
    keep = base[LANDMARK].isin(landmarks).to_numpy()
    rows = base.loc[keep, ["client_id", LANDMARK, "label"]].reset_index(drop=True)
    if rows.empty:
        raise CompareDataError("no client attended any of the landmark sessions asked for")
    absent = sorted(set(landmarks) - set(rows[LANDMARK].unique()))
    if absent:
        warnings.append(f"no client attended landmark session(s) {', '.join(map(str, absent))}")
    return ComparisonData(sessions, ended, n_ongoing, spec, keep, rows, landmarks)


def client_labels(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("client_id", sort=True)["label"].first()


def _fold_frame(data: ComparisonData, train_clients: np.ndarray) -> pd.DataFrame:
    """All kept rows, with expected trajectories fitted on ``train_clients`` only."""
    train_sessions = data.sessions[data.sessions["client_id"].isin(train_clients)]
    trajectories = fit_expected_trajectories(train_sessions, data.spec)
    frame = build_features(data.sessions, data.episodes, data.spec, trajectories)[data.keep].reset_index(drop=True)
    if not frame["client_id"].equals(data.rows["client_id"]) or not frame[LANDMARK].equals(data.rows[LANDMARK]):
        raise RuntimeError("landmark rows differ between feature builds")  # build_features sorts: cannot happen
    return frame


def make_folds(data: ComparisonData, settings: CompareSettings, folds: int, repeats: int) -> list[Fold]:
    """``folds`` client-grouped, outcome-stratified folds per repeat (seed ``compare.seed + repeat``)."""
    check_enough_clients(
        client_labels(data.rows),
        folds=folds,
        min_per_fold=settings.training.min_clients_per_fold,
        what="clients with a landmark row",
        setting="--folds",
    )
    out = []
    for repeat in range(repeats):
        for fold, (train, valid) in enumerate(
            grouped_folds(data.rows, folds=folds, seed=settings.compare.seed + repeat)
        ):
            frame = _fold_frame(data, data.rows["client_id"].iloc[train].unique())
            out.append(Fold(repeat, fold, train, valid, frame))
    return out


def design_assignment(folds: list[Fold], repeats: int, n_rows: int) -> np.ndarray:
    """repeats x rows: the fold each row was held out in."""
    assignment = np.full((repeats, n_rows), -1, dtype=np.int64)
    for fold in folds:
        assignment[fold.repeat, fold.valid] = fold.fold
    return assignment


def fold_digest(client_ids: np.ndarray, assignment: np.ndarray) -> str:
    """A short hash of which fold each client was in, per repeat (``assignment``: repeats x rows)."""
    digest = hashlib.sha256()
    for repeat, folds in enumerate(np.atleast_2d(assignment)):
        if (folds < 0).any():
            raise RuntimeError("a row was never held out")
        per_client = pd.DataFrame({"client_id": client_ids, "fold": folds}).drop_duplicates()
        if per_client["client_id"].duplicated().any():
            raise RuntimeError("a client's rows fell in different folds")
        per_client = per_client.sort_values("client_id")
        lines = "\n".join(f"{c}\t{f}" for c, f in zip(per_client["client_id"], per_client["fold"], strict=True))
        digest.update(f"repeat {repeat}\n{lines}\n".encode())
    return digest.hexdigest()[:16]


def fold_clients(assignment: np.ndarray, rows: pd.DataFrame) -> list[int]:
    """Clients per fold in the first repeat."""
    per_client = pd.Series(assignment[0]).groupby(rows["client_id"].to_numpy()).first()
    return [int(n) for n in per_client.value_counts().sort_index()]
