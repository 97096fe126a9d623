"""Within-session discrimination (issue 11): the mean per-landmark AUC, its client-bootstrap CI, exclusions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dropout_risk.training.evaluation.bootstrap import client_bootstrap
from dropout_risk.training.evaluation.stratified_within import (
    stratified_resamples,
    stratified_within_landmark_auc,
)
from dropout_risk.training.evaluation.within_landmark import (
    evaluable_landmarks,
    paired_within_landmark_difference,
    within_landmark_auc,
)


def _frame(n_clients: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Clients with 1-6 landmarks, dropouts fewer (as in care); the risk carries the outcome and the session."""
    rng = np.random.default_rng(seed)
    rows = []
    for client in range(n_clients):
        dropout = rng.random() < 0.3
        for k in range(1, (min(rng.geometric(0.5), 6) if dropout else rng.integers(1, 7)) + 1):
            signal = 0.25 * dropout + rng.random() * 0.6 + 0.1 * (6 - k) / 6
            rows.append((f"c{client}", k, float(dropout), min(signal, 1.0)))
    frame = pd.DataFrame(rows, columns=["client_id", "landmark", "label", "risk"])
    frame["noisy"] = np.clip(frame["risk"] + rng.normal(0, 0.2, len(frame)), 0, 1)
    return frame


def test_it_is_the_mean_of_the_per_landmark_aucs_with_a_client_bootstrap_ci():
    frame = _frame()
    result = within_landmark_auc(frame, n_resamples=60, seed=3)
    expected = np.mean([roc_auc_score(g["label"], g["risk"]) for _, g in frame.groupby("landmark")])
    assert result.auc == pytest.approx(expected, abs=1e-12)
    assert result.landmarks == (1, 2, 3, 4, 5, 6) and result.excluded == ()
    lo, hi = result.ci
    assert lo < result.auc < hi and hi - lo < 0.15

    def statistic(sample: pd.DataFrame) -> float:
        return float(np.mean([roc_auc_score(g["label"], g["risk"]) for _, g in sample.groupby("landmark")]))

    # The same clients drawn by the slow, row-copying route give the same interval.
    slow = client_bootstrap(frame, statistic, n_resamples=60, seed=3)["value"]
    assert slow == pytest.approx(result.ci, abs=1e-9)


def test_landmarks_with_one_class_or_too_few_clients_are_named_with_their_reason():
    frame = _frame()
    late = frame["landmark"] == 6
    frame.loc[late, "label"] = 0.0  # only completers reach session 6
    few = frame.index[(frame["landmark"] == 5) & (frame["label"] == 1)][3:]
    frame = frame.drop(few)  # 3 dropouts left at session 5
    included, excluded = evaluable_landmarks(frame, 10)
    assert included == [1, 2, 3, 4]
    assert [(e.landmark, e.reason) for e in excluded] == [
        (
            5,
            "3 dropouts and "
            + str(int(((frame.landmark == 5) & (frame.label == 0)).sum()))
            + " completers at session 5: fewer than 10 clients in one class (evaluation.min_class_clients)",
        ),
        (6, "only completers reach session 6 (one outcome class)"),
    ]
    result = within_landmark_auc(frame)
    assert result.landmarks == (1, 2, 3, 4) and not np.isnan(result.auc)
    assert result.to_json()["excluded_landmarks"][1] == {
        "landmark": 6,
        "reason": "only completers reach session 6 (one outcome class)",
    }


def test_no_evaluable_landmark_gives_no_figure_rather_than_a_silent_nan():
    frame = _frame(n_clients=20)
    result = within_landmark_auc(frame, min_class_clients=50)
    assert result.landmarks == () and len(result.excluded) == 6
    assert result.to_json()["within_landmark_auc"] is None


def test_the_session_number_alone_is_worth_nothing_within_a_session_but_much_pooled():
    frame = _frame()
    frame["by_session"] = frame.groupby("landmark")["label"].transform("mean")  # landmark_only
    assert within_landmark_auc(frame, "by_session").auc == 0.5
    assert roc_auc_score(frame["label"], frame["by_session"]) > 0.55


def test_paired_difference_on_the_same_clients():
    frame = _frame()
    same = paired_within_landmark_difference(frame, "risk", "risk", n_resamples=200)
    assert same["delta"] == 0 and same["ci"] == [0.0, 0.0]
    better = paired_within_landmark_difference(frame, "risk", "noisy", n_resamples=300)
    assert better["delta"] == pytest.approx(better["a"] - better["b"])
    assert better["a"] == pytest.approx(within_landmark_auc(frame).auc)
    assert 0 < better["ci"][0] < better["delta"] < better["ci"][1]


def _folded(n_clients: int = 600, folds: int = 3, seed: int = 1) -> pd.DataFrame:
    """Out-of-fold rows as train's small-data mode writes them: each client in one fold of each of 2 repeats."""
    frame = _frame(n_clients, seed).rename(columns={"landmark": "session_number"})
    rng = np.random.default_rng(seed)
    parts = []
    for repeat in range(2):
        fold_of = dict(zip(frame["client_id"].unique(), rng.integers(0, folds, n_clients), strict=True))
        part = frame.assign(repeat=repeat, fold=frame["client_id"].map(fold_of))
        part["risk"] = np.clip(part["risk"] + rng.normal(0, 0.05, len(part)), 0, 1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _pairs_by_hand(oof: pd.DataFrame, score: str, landmarks) -> float:
    """Each landmark's share of concordant (dropout, completer) pairs scored by the same fold model; their mean."""
    per_landmark = []
    for k in landmarks:
        concordant = pairs = 0.0
        for _, g in oof[oof["session_number"] == k].groupby(["repeat", "fold"]):
            pos, neg = g.loc[g["label"] == 1, score].to_numpy(), g.loc[g["label"] == 0, score].to_numpy()
            concordant += np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])
            pairs += pos.size * neg.size
        per_landmark.append(concordant / pairs)
    return float(np.mean(per_landmark))


def test_out_of_fold_risks_are_compared_only_within_the_fold_that_scored_them():
    oof = _folded()
    result = stratified_within_landmark_auc(oof, "risk", n_resamples=200, seed=5)
    assert result.landmarks[:4] == (1, 2, 3, 4)
    assert result.auc == pytest.approx(_pairs_by_hand(oof, "risk", result.landmarks), abs=1e-12)
    lo, hi = result.ci
    assert lo < result.auc < hi
    # A fold model whose risks all sit higher changes nothing within its fold, but pooling across folds sees it.
    shifted = oof.assign(risk=np.where(oof["fold"] == 0, 0.5 + 0.5 * oof["risk"], oof["risk"]))
    assert stratified_within_landmark_auc(shifted, "risk", n_resamples=200, seed=5).auc == pytest.approx(result.auc)
    pooled = shifted.rename(columns={"session_number": "landmark"})
    assert abs(within_landmark_auc(pooled, "risk", n_resamples=10).auc - result.auc) > 0.01


def test_a_paired_stratified_difference_is_the_difference_of_the_two_figures_on_the_same_resamples():
    oof = _folded()
    oof["noisy"] = np.clip(oof["risk"] + np.random.default_rng(2).normal(0, 0.3, len(oof)), 0, 1)
    paired = stratified_resamples(oof, ["risk", "noisy"], n_resamples=300, seed=4).paired("risk", "noisy")
    a = stratified_within_landmark_auc(oof, "risk", n_resamples=300, seed=4)
    b = stratified_within_landmark_auc(oof, "noisy", n_resamples=300, seed=4)
    assert paired["a"] == pytest.approx(a.auc) and paired["b"] == pytest.approx(b.auc)
    assert paired["delta"] == pytest.approx(a.auc - b.auc)
    lo, hi = paired["ci"]
    assert 0 < lo < paired["delta"] < hi and paired["p_value"] < 0.05
    same = stratified_resamples(oof, ["risk"], n_resamples=100, seed=4).paired("risk", "risk")
    assert same["delta"] == 0 and same["ci"] == [0.0, 0.0] and same["p_value"] == 1.0
