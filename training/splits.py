"""Every split is by client: a client's rows never sit on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

SplitKind = Literal["random", "temporal"]


class TooFewClientsError(ValueError):
    pass


def holdout_clients(
    clients: pd.DataFrame, *, fraction: float, kind: SplitKind = "random", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train client ids, test client ids).

    ``random`` stratifies by outcome; ``temporal`` tests on the clients whose
    treatment started last, as a deployed model would meet them.
    """
    ids = clients["client_id"].to_numpy()
    if kind == "temporal":
        order = np.argsort(clients["first_date"].to_numpy(), kind="stable")
        n_test = max(1, int(round(fraction * len(ids))))
        return np.sort(ids[order[:-n_test]]), np.sort(ids[order[-n_test:]])
    train, test = train_test_split(ids, test_size=fraction, random_state=seed, stratify=clients["label"].to_numpy())
    return np.sort(train), np.sort(test)


def check_enough_clients(labels: pd.Series, *, folds: int, min_per_fold: int, what: str) -> None:
    """Every fold needs clients of both outcomes; say how many are missing, not whose."""
    counts = labels.value_counts()
    needed = folds * min_per_fold
    for value, name in ((1.0, "dropout"), (0.0, "completed")):
        have = int(counts.get(value, 0))
        if have < needed:
            raise TooFewClientsError(
                f"{what}: {have} {name} client(s), but {folds} folds need at least {needed} "
                f"({min_per_fold} per fold); lower training.folds or add data"
            )


def grouped_folds(features: pd.DataFrame, *, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row positions of client-grouped, outcome-stratified folds."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(features, features["label"].to_numpy(), groups=features["client_id"].to_numpy()))


def leave_one_clinic_out(features: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(clinic, train row positions, test row positions) for each clinic."""
    clinics = features["clinic_id"].astype("string")
    for clinic in sorted(clinics.dropna().unique()):
        in_clinic = (clinics == clinic).fillna(False).to_numpy(dtype=bool)
        yield str(clinic), np.flatnonzero(~in_clinic), np.flatnonzero(in_clinic)
