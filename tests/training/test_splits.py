"""Every split is by client; folds stratify by outcome; errors say how many, never whom."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from dropout_risk.training.splits import (
    SplitError,
    TiedStartDatesWarning,
    TooFewClientsError,
    check_enough_clients,
    check_enough_test_clients,
    grouped_folds,
    holdout_clients,
    leave_one_clinic_out,
)


def _rows(n_clients: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = rng.integers(1, 9, n_clients)
    clients = np.repeat([f"c{i:04d}" for i in range(n_clients)], sessions)
    labels = np.repeat(rng.binomial(1, 0.25, n_clients).astype(float), sessions)
    clinic = np.repeat(rng.choice(["a", "b", "c"], n_clients), sessions)
    return pd.DataFrame(
        {
            "client_id": clients,
            "label": labels,
            "clinic_id": clinic,
            "landmark": np.concatenate([np.arange(1, s + 1) for s in sessions]),
        }
    )


def _clients(rows: pd.DataFrame) -> pd.DataFrame:
    first = rows.groupby("client_id")
    return pd.DataFrame(
        {
            "client_id": first.size().index,
            "label": first["label"].first().to_numpy(),
            "first_date": pd.date_range("2023-01-01", periods=first.ngroups, freq="D")[::-1],
        }
    )


def test_random_holdout_is_disjoint_and_stratified():
    clients = _clients(_rows())
    train, test = holdout_clients(clients, fraction=0.2, seed=3)
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(clients)
    assert len(test) == 40  # the fraction asked for, of 200 clients
    rate = clients.set_index("client_id")["label"]
    assert abs(rate.loc[test].mean() - rate.mean()) < 0.03
    again = holdout_clients(clients, fraction=0.2, seed=3)
    assert np.array_equal(again[1], test)


def test_random_holdout_gives_the_test_set_its_share_of_dropouts_whatever_the_seed():
    clients = _clients(_rows())
    rate = clients.set_index("client_id")["label"]
    expected = 0.2 * rate.sum()
    for seed in range(10):  # an unstratified draw of 40 strays from it by 2 or more for some of these seeds
        test = holdout_clients(clients, fraction=0.2, seed=seed)[1]
        assert abs(rate.loc[test].sum() - expected) <= 1, seed


def test_temporal_holdout_tests_on_the_latest_intakes():
    clients = _clients(_rows())
    train, test = holdout_clients(clients, fraction=0.25, kind="temporal")
    dates = clients.set_index("client_id")["first_date"]
    assert dates.loc[test].min() > dates.loc[train].max()
    assert len(test) == 50


def test_grouped_folds_never_split_a_client():
    rows = _rows()
    folds = grouped_folds(rows, folds=4, seed=0)
    assert len(folds) == 4
    seen = []
    for train_idx, valid_idx in folds:
        train_clients, valid_clients = set(rows.iloc[train_idx]["client_id"]), set(rows.iloc[valid_idx]["client_id"])
        assert train_clients.isdisjoint(valid_clients)
        assert rows.iloc[valid_idx]["label"].nunique() == 2
        seen.extend(valid_idx)
    assert sorted(seen) == list(range(len(rows)))


def test_grouped_folds_are_reproducible_by_their_seed():
    rows = _rows()
    first, again = grouped_folds(rows, folds=4, seed=7), grouped_folds(rows, folds=4, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    other = grouped_folds(rows, folds=4, seed=8)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


def test_leave_one_clinic_out_holds_out_each_clinic_once():
    rows = _rows().astype({"clinic_id": "object"})
    rows.loc[rows.index[:3], "clinic_id"] = None  # unknown clinic: always trained on, never held out
    held = []
    for clinic, train_idx, test_idx in leave_one_clinic_out(rows):
        assert (rows.iloc[test_idx]["clinic_id"] == clinic).all()
        assert not (rows.iloc[train_idx]["clinic_id"] == clinic).any()
        assert set(rows.index[:3]) <= set(train_idx)
        assert len(test_idx) == (rows["clinic_id"] == clinic).sum()  # all the clinic's rows, held out
        assert sorted([*train_idx, *test_idx]) == list(range(len(rows)))
        held.append(clinic)
    assert held == ["a", "b", "c"]


def test_too_few_clients_says_how_many_without_ids():
    labels = pd.Series([1.0] * 7 + [0.0] * 40, index=[f"secret{i}" for i in range(47)])
    with pytest.raises(TooFewClientsError) as caught:
        check_enough_clients(labels, folds=3, min_per_fold=5, what="training clients")
    assert str(caught.value) == (
        "training clients: 7 dropout client(s), but 3 folds (training.folds) need at least 15 "
        "(5 per fold, training.min_clients_per_fold); lower training.folds or add data"
    )
    check_enough_clients(labels, folds=1, min_per_fold=5, what="x")


def test_exactly_enough_clients_of_each_outcome_is_enough():
    labels = pd.Series([1.0] * 15 + [0.0] * 15)
    check_enough_clients(labels, folds=3, min_per_fold=5, what="training clients")
    check_enough_test_clients(labels, min_clients=15, fraction=0.2)


@pytest.mark.parametrize(
    ("labels", "short"),
    [
        ([0.0] * 40, "0 dropout client(s)"),
        ([1.0] * 40 + [0.0] * 7, "7 completed client(s)"),
        ([1.0] * 40, "0 completed client(s)"),
    ],
)
def test_too_few_clients_of_either_outcome_is_refused_with_its_count(labels, short):
    with pytest.raises(TooFewClientsError, match=rf"^training clients: {re.escape(short)}.* need at least 15 "):
        check_enough_clients(pd.Series(labels), folds=3, min_per_fold=5, what="training clients")


def test_the_refusal_names_the_folds_asked_for_and_their_setting():
    labels = pd.Series([1.0] * 27 + [0.0] * 40)
    with pytest.raises(TooFewClientsError, match=r"but 5 folds \(training.folds\) and a test set need at least 30 "):
        check_enough_clients(labels, folds=5, min_per_fold=5, what="ended episodes", test_set=True)
    with pytest.raises(TooFewClientsError, match=r"but 10 folds \(--folds\) need at least 50 .*; lower --folds or"):
        check_enough_clients(labels, folds=10, min_per_fold=5, what="clients", setting="--folds")
    with pytest.raises(TooFewClientsError) as caught:
        check_enough_test_clients(labels.iloc[:3], min_clients=5, fraction=0.2)
    assert str(caught.value) == (
        "test clients: 3 dropout client(s) in the test set (training.test_fraction = 0.2), but it needs at "
        "least 5 (training.min_clients_per_fold); raise training.test_fraction or add data"
    )


def test_temporal_holdout_breaks_tied_start_dates_at_random_and_warns():
    clients = _clients(_rows(n_clients=100))
    clients["first_date"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(100) // 10, unit="D")
    clients = clients.iloc[::-1].reset_index(drop=True)  # ids in reverse: the rule, not the input order, decides
    with pytest.warns(TiedStartDatesWarning, match=r"10 clients started on the date of the cut; 5 of them"):
        train, test = holdout_clients(clients, fraction=0.25, kind="temporal", seed=1)
    dates = clients.set_index("client_id")["first_date"]
    assert len(test) == 25 and dates.loc[test].min() == dates.loc[train].max()
    assert (dates.loc[test] > dates.loc[test].min()).sum() == 20  # the two latest dates, then 5 of the tied 10
    tie = sorted(dates[dates == dates.loc[test].min()].index)
    tied_in_test = sorted(set(test) & set(tie))
    assert tied_in_test != tie[:5] and tied_in_test != tie[-5:]  # drawn at random, not by id order
    with pytest.warns(TiedStartDatesWarning):  # the seed fixes the draw
        assert np.array_equal(holdout_clients(clients, fraction=0.25, kind="temporal", seed=1)[1], test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tie at the cut: no warning
        holdout_clients(clients, fraction=0.2, kind="temporal")


def test_temporal_holdout_refuses_when_every_client_started_on_one_date():
    clients = _clients(_rows(n_clients=50)).assign(first_date=pd.Timestamp("2023-01-01"))
    refusal = (
        "--split temporal: every client's first session has the same date, so there is no time order "
        "to split on; use --split random"
    )
    with pytest.raises(SplitError, match=f"^{re.escape(refusal)}$"):
        holdout_clients(clients, fraction=0.2, kind="temporal")


def test_two_start_dates_are_a_time_order_to_split_on():
    clients = _clients(_rows(n_clients=20))
    clients["first_date"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(20) // 10, unit="D")
    train, test = holdout_clients(clients, fraction=0.5, kind="temporal")
    dates = clients.set_index("client_id")["first_date"]
    assert dates.loc[test].min() > dates.loc[train].max()


def test_a_temporal_test_set_is_never_empty():
    clients = _clients(_rows(n_clients=20))
    train, test = holdout_clients(clients, fraction=0.01, kind="temporal")
    assert len(test) == 1 and len(train) == 19


def _one_tied_test_client() -> pd.DataFrame:
    clients = _clients(_rows(n_clients=10))
    days = [0, 0, 0, 1, 1, 1, 2, 3, 4, 5]  # the cut (5 test clients) takes one of the three day-1 starters
    return clients.assign(first_date=pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"))


def test_a_tie_at_the_first_test_client_alone_is_warned_about():
    with pytest.warns(TiedStartDatesWarning, match=r"3 clients started on the date of the cut; 1 of them"):
        holdout_clients(_one_tied_test_client(), fraction=0.5, kind="temporal")


# mutmut calls every function of the mutated module through a trampoline, an extra frame.
@pytest.mark.skipif("MUTANT_UNDER_TEST" in os.environ, reason="the stack has mutmut's frames")
def test_the_tie_warning_points_at_the_code_that_asked_for_the_split():
    with pytest.warns(TiedStartDatesWarning) as seen:
        holdout_clients(_one_tied_test_client(), fraction=0.5, kind="temporal")
    assert seen[0].filename == __file__
