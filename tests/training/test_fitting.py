"""Model selection: grouped out-of-fold AUC decides, and a booster must earn its complexity."""

from __future__ import annotations

import numpy as np
import pytest

from dropout_risk.training.fitting import CandidateResult, fit_candidates, select
from dropout_risk.training.settings import TrainingConfig


def _result(kind: str, folds: list[float]) -> CandidateResult:
    return CandidateResult(kind=kind, estimator=None, oof=np.zeros(1), cv_auc=float(np.mean(folds)), fold_aucs=folds)


LOGISTIC = [0.70, 0.66, 0.72, 0.68, 0.69]


@pytest.mark.parametrize(
    ("lightgbm", "chosen"),
    [
        # Better in every fold by 0.02 (SE ~0): the booster ships.
        ([0.72, 0.68, 0.74, 0.70, 0.71], "lightgbm"),
        # Better on average by 0.01, but the folds disagree (SE ~0.011): no evidence, the simpler model ships.
        ([0.74, 0.64, 0.74, 0.67, 0.70], "logistic"),
        ([0.69, 0.65, 0.71, 0.67, 0.68], "logistic"),
    ],
)
def test_a_booster_must_beat_logistic_by_more_than_one_standard_error(lightgbm, chosen):
    results = {"logistic": _result("logistic", LOGISTIC), "lightgbm": _result("lightgbm", lightgbm)}
    selection = select(results, ["logistic", "lightgbm"], margin=0.0)
    assert selection.chosen.kind == chosen
    differences = np.subtract(lightgbm, LOGISTIC)
    assert selection.difference == pytest.approx(differences.mean())
    assert selection.standard_error == pytest.approx(differences.std(ddof=1) / np.sqrt(5))
    assert ("logistic ships" in selection.rule) == (chosen == "logistic")


def test_select_respects_the_candidate_list():
    results = {"logistic": _result("logistic", [0.75] * 3), "lightgbm": _result("lightgbm", [0.70] * 3)}
    assert select(results, ["lightgbm"], margin=0.005).chosen.kind == "lightgbm"


def test_small_noisy_data_does_not_ship_an_overfit_booster(model_frame):
    """A few hundred clients and one real signal among many noise columns: logistic wins CV."""
    X, y, columns, folds = model_frame
    results = fit_candidates(X, y, columns, folds, TrainingConfig(folds=3))
    assert set(results) == {"logistic", "lightgbm"}
    for result in results.values():
        assert np.isfinite(result.oof).all() and len(result.fold_aucs) == 3
    assert select(results, ["logistic", "lightgbm"], margin=0.0).chosen.kind == "logistic"


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
