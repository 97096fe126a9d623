"""Model selection: grouped out-of-fold AUC decides, and a booster must earn its complexity."""

from __future__ import annotations

import numpy as np
import pytest

from dropout_risk.training.fitting import CandidateResult, fit_candidates, select
from dropout_risk.training.settings import TrainingConfig


def _result(kind: str, auc: float) -> CandidateResult:
    return CandidateResult(kind=kind, estimator=None, oof=np.zeros(1), cv_auc=auc, fold_aucs=[auc])


@pytest.mark.parametrize(
    ("logistic", "lightgbm", "chosen"),
    [
        (0.70, 0.72, "lightgbm"),  # clearly better: the booster ships
        (0.70, 0.703, "logistic"),  # within the margin: the simpler model ships
        (0.70, 0.69, "logistic"),
    ],
)
def test_select_prefers_logistic_unless_beaten_by_the_margin(logistic, lightgbm, chosen):
    results = {"logistic": _result("logistic", logistic), "lightgbm": _result("lightgbm", lightgbm)}
    assert select(results, ["logistic", "lightgbm"], margin=0.005).kind == chosen


def test_select_respects_the_candidate_list():
    results = {"logistic": _result("logistic", 0.75), "lightgbm": _result("lightgbm", 0.70)}
    assert select(results, ["lightgbm"], margin=0.005).kind == "lightgbm"


def test_small_noisy_data_does_not_ship_an_overfit_booster(model_frame):
    """A few hundred clients and one real signal among many noise columns: logistic wins CV."""
    X, y, columns, folds = model_frame
    results = fit_candidates(X, y, columns, folds, TrainingConfig(folds=3))
    assert set(results) == {"logistic", "lightgbm"}
    for result in results.values():
        assert np.isfinite(result.oof).all() and len(result.fold_aucs) == 3
    assert select(results, ["logistic", "lightgbm"], margin=0.005).kind == "logistic"


def test_tuning_budget_runs_optuna_on_the_same_folds(model_frame):
    X, y, columns, folds = model_frame
    results = fit_candidates(X, y, columns, folds, TrainingConfig(folds=3, tuning_trials=3, candidates=["lightgbm"]))
    assert set(results["lightgbm"].params) == {
        "learning_rate",
        "num_leaves",
        "min_child_samples",
        "n_estimators",
        "reg_lambda",
    }


@pytest.fixture(scope="module")
def model_frame():
    import pandas as pd

    from dropout_risk.training.splits import grouped_folds

    rng = np.random.default_rng(7)
    n_clients, per_client = 300, 4
    signal = rng.normal(size=n_clients)
    y_client = rng.binomial(1, 1 / (1 + np.exp(-(signal - 1.2))))
    frame = pd.DataFrame(
        {
            "client_id": np.repeat(np.arange(n_clients), per_client),
            "landmark": np.tile(np.arange(1, per_client + 1), n_clients).astype(float),
            "label": np.repeat(y_client, per_client).astype(float),
            "signal": np.repeat(signal, per_client) + rng.normal(scale=0.3, size=n_clients * per_client),
        }
    )
    for i in range(20):
        frame[f"noise{i}"] = rng.normal(size=len(frame))
    columns = ["landmark", "signal", *[f"noise{i}" for i in range(20)]]
    folds = grouped_folds(frame, folds=3, seed=0)
    return frame, frame["label"].to_numpy(dtype=int), columns, folds
