"""Every split is by client: a client's rows never sit on both sides."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

SplitKind = Literal["random", "temporal"]


class SplitError(ValueError):
    """The data cannot be split as asked; the message says why and what to change."""


class TooFewClientsError(SplitError):
    pass


class TiedStartDatesWarning(UserWarning):
    """A temporal split's cut fell among clients who started on the same date."""


def holdout_clients(
    clients: pd.DataFrame, *, fraction: float, kind: SplitKind = "random", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train client ids, test client ids).

    ``random`` stratifies by outcome; ``temporal`` tests on the clients whose
    treatment started last, as a deployed model would meet them (see ``_temporal_holdout``
    for tied start dates).
    """
    ids = clients["client_id"].to_numpy()
    if kind == "temporal":
        return _temporal_holdout(clients, fraction=fraction, seed=seed)
    train, test = train_test_split(ids, test_size=fraction, random_state=seed, stratify=clients["label"].to_numpy())
    return np.sort(train), np.sort(test)


def _temporal_holdout(clients: pd.DataFrame, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The latest starters as the test set.

    Clients who started on the same date have no time order between them: they are ordered
    at random (``seed``), so a cut among them splits that date's clients at random rather than
    by the order of their ids (which a clinic may assign by site, therapist or surname). The
    cut is warned about; data whose clients all started on one date have no time order at
    all and are refused.
    """
    ids = clients["client_id"].to_numpy()
    dates = clients["first_date"].to_numpy()
    if len(np.unique(dates)) < 2:
        raise SplitError(
            "--split temporal: every client's first session has the same date, so there is no time order "
            "to split on; use --split random"
        )
    tiebreak = np.random.default_rng(seed).permutation(len(ids))
    order = np.lexsort((tiebreak, dates))
    n_test = max(1, int(round(fraction * len(ids))))
    train, test = order[:-n_test], order[-n_test:]
    cut = dates[test[0]]
    on_both_sides = int((dates[train] == cut).sum()), int((dates[test] == cut).sum())
    if on_both_sides[0]:
        warnings.warn(
            f"--split temporal: {sum(on_both_sides)} clients started on the date of the cut; "
            f"{on_both_sides[1]} of them, drawn at random (training.seed), went to the test set",
            TiedStartDatesWarning,
            stacklevel=3,
        )
    return np.sort(ids[train]), np.sort(ids[test])


def check_enough_clients(
    labels: pd.Series,
    *,
    folds: int,
    min_per_fold: int,
    what: str,
    setting: str = "training.folds",
    test_set: bool = False,
) -> None:
    """Every fold (and the test set beside them, with ``test_set``) needs ``min_per_fold`` clients
    of each outcome (``training.min_clients_per_fold``).

    The refusal names the folds as the user asked for them and ``setting``, the setting that
    changes them (``training.folds`` for train, ``--folds`` for compare); it says how many
    clients are missing, never whose.
    """
    needed = (folds + int(test_set)) * min_per_fold
    asked = f"{folds} folds ({setting})" + (" and a test set" if test_set else "")
    if short := _short_classes(labels, needed):
        have, name = short[0]
        raise TooFewClientsError(
            f"{what}: {have} {name} client(s), but {asked} need at least {needed} "
            f"({min_per_fold} per fold, training.min_clients_per_fold); lower {setting} or add data"
        )


def check_enough_test_clients(labels: pd.Series, *, min_clients: int, fraction: float) -> None:
    """The test set needs ``min_clients`` of each outcome; the refusal names the share that sets its size."""
    if short := _short_classes(labels, min_clients):
        have, name = short[0]
        raise TooFewClientsError(
            f"test clients: {have} {name} client(s) in the test set (training.test_fraction = {fraction}), "
            f"but it needs at least {min_clients} (training.min_clients_per_fold); "
            "raise training.test_fraction or add data"
        )


def _short_classes(labels: pd.Series, needed: int) -> list[tuple[int, str]]:
    """(clients, outcome) of each outcome with fewer than ``needed`` clients, dropout first."""
    counts = labels.value_counts()
    have = [(int(counts.get(value, 0)), name) for value, name in ((1.0, "dropout"), (0.0, "completed"))]
    return [(n, name) for n, name in have if n < needed]


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
