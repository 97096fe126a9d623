"""Client-clustered bootstrap: clients (not rows) are resampled, intervals are sane and reproducible."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dropout_risk.training.evaluation import bootstrap
from dropout_risk.training.evaluation.bootstrap import (
    _BLOCK_CELLS,
    _blocks,
    bootstrap_metric_cis,
    client_bootstrap,
    draw_clients,
    paired_bootstrap_difference,
    percentile_interval,
    recentred_interval,
)
from dropout_risk.training.evaluation.metrics import (
    brier,
    calibration_slope_intercept,
    evaluate,
    expected_calibration_error,
    pr_auc,
    roc_auc,
)


def landmark_frame(n_clients: int, seed: int = 0, max_landmarks: int = 4) -> pd.DataFrame:
    """Clients with 1..max_landmarks rows; risk and label share a client-level latent."""
    rng = np.random.default_rng(seed)
    n_rows = rng.integers(1, max_landmarks + 1, n_clients)
    client = np.repeat(np.arange(n_clients), n_rows)
    landmark = np.concatenate([np.arange(1, k + 1) for k in n_rows])
    latent = rng.normal(size=n_clients)
    label = (rng.random(n_clients) < 1 / (1 + np.exp(-(latent - 0.8)))).astype(int)
    risk = 1 / (1 + np.exp(-(latent[client] - 0.8 + 0.5 * rng.normal(size=client.size))))
    frame = pd.DataFrame(
        {"client_id": [f"c{i:04d}" for i in client], "landmark": landmark, "risk": risk, "label": label[client]}
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows of a client not adjacent


def _metrics(frame: pd.DataFrame) -> dict[str, float]:
    y, p = frame["label"], frame["risk"]
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "brier": brier(y, p),
        "calibration_slope": calibration_slope_intercept(y, p)[0],
        "calibration_intercept": calibration_slope_intercept(y, p)[1],
        "ece": expected_calibration_error(y, p),
    }


ALL = ("roc_auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece")


def test_duplicating_every_clients_rows_leaves_the_intervals_unchanged():
    """Resampling clients, a client's 100 identical rows move together: the CI cannot narrow.

    A row bootstrap would treat the 100 copies as independent evidence and shrink the interval
    about tenfold; the last assertion shows that this design detects exactly that.
    """
    once = landmark_frame(150, seed=1, max_landmarks=1)
    hundred = once.loc[once.index.repeat(100)].reset_index(drop=True)

    fast_once = bootstrap_metric_cis(once, metrics=ALL, n_resamples=60, seed=7)
    fast_hundred = bootstrap_metric_cis(hundred, metrics=ALL, n_resamples=60, seed=7)
    for metric in ALL:
        np.testing.assert_allclose(fast_hundred["pooled"][metric], fast_once["pooled"][metric], rtol=1e-7)
        np.testing.assert_allclose(
            fast_hundred["by_landmark"]["1"][metric], fast_once["by_landmark"]["1"][metric], rtol=1e-7
        )

    def stat(frame):
        return {"brier": brier(frame["label"], frame["risk"]), "prevalence": frame["label"].mean()}

    generic_once = client_bootstrap(once, stat, n_resamples=60, seed=7)
    generic_hundred = client_bootstrap(hundred, stat, n_resamples=60, seed=7)
    for metric in ("brier", "prevalence"):
        np.testing.assert_allclose(generic_hundred[metric], generic_once[metric], rtol=1e-7)

    # the same design catches a row-level bootstrap
    rng = np.random.default_rng(7)
    row_level = [hundred["label"].to_numpy()[rng.integers(0, len(hundred), len(hundred))].mean() for _ in range(60)]
    row_lo, row_hi = percentile_interval(row_level)
    lo, hi = generic_hundred["prevalence"]
    assert (row_hi - row_lo) < 0.3 * (hi - lo)


def test_fast_path_equals_generic_client_bootstrap_with_the_same_seed():
    frame = landmark_frame(150, seed=2)
    fast = bootstrap_metric_cis(frame, metrics=ALL, n_resamples=40, seed=3)
    generic = client_bootstrap(frame, _metrics, n_resamples=40, seed=3)
    for metric in ALL:
        np.testing.assert_allclose(fast["pooled"][metric], generic[metric], rtol=1e-6, err_msg=metric)
    for landmark in ("1", "4"):
        # per-landmark intervals come from the same client draws as the pooled ones
        generic_lm = client_bootstrap(
            frame, lambda f, k=int(landmark): _metrics(f[f["landmark"] == k]), n_resamples=40, seed=3
        )
        for metric in ALL:
            np.testing.assert_allclose(
                fast["by_landmark"][landmark][metric], generic_lm[metric], rtol=1e-6, err_msg=f"{landmark} {metric}"
            )


def test_each_drawn_copy_of_a_client_gets_its_own_id():
    frame = landmark_frame(60, seed=4)
    seen = client_bootstrap(
        frame, lambda f: {"clients": f["client_id"].nunique(), "rows": len(f)}, n_resamples=30, seed=0
    )
    assert seen["clients"] == (60.0, 60.0)
    assert seen["rows"][0] < seen["rows"][1]  # rows per resample vary: whole clients are drawn


def test_intervals_contain_the_point_estimates():
    frame = landmark_frame(800, seed=5)
    cis = bootstrap_metric_cis(frame, metrics=ALL, n_resamples=200, seed=0)
    point = evaluate(frame)
    for scope, ci_scope, point_scope in [("pooled", cis["pooled"], point["pooled"])] + [
        (k, cis["by_landmark"][k], point["by_landmark"][k]) for k in point["by_landmark"]
    ]:
        for metric in ALL:
            lo, hi = ci_scope[metric]
            assert lo <= point_scope[metric] <= hi, (scope, metric)
            assert lo < hi, (scope, metric)
    assert set(cis["by_landmark"]) == {"1", "2", "3", "4"}


def test_reproducible_with_seed():
    frame = landmark_frame(200, seed=6)
    a = bootstrap_metric_cis(frame, n_resamples=50, seed=11)
    b = bootstrap_metric_cis(frame, n_resamples=50, seed=11)
    c = bootstrap_metric_cis(frame, n_resamples=50, seed=12)
    assert a == b
    assert a["pooled"]["roc_auc"] != c["pooled"]["roc_auc"]
    stat = lambda f: roc_auc(f["label"], f["risk"])  # noqa: E731
    first = client_bootstrap(frame, stat, n_resamples=20, seed=1)
    assert first == client_bootstrap(frame, stat, n_resamples=20, seed=1)


def test_resamples_where_a_metric_is_undefined_are_dropped():
    frame = landmark_frame(40, seed=8, max_landmarks=1)
    frame["label"] = 0
    frame.loc[frame.index[0], "label"] = 1  # one dropout: it is absent from ~37% of resamples
    cis = bootstrap_metric_cis(frame, metrics=("roc_auc", "brier"), n_resamples=100, seed=0)
    assert all(np.isfinite(cis["pooled"]["roc_auc"]))
    assert all(np.isfinite(cis["pooled"]["brier"]))

    frame["label"] = 0  # never defined
    cis = bootstrap_metric_cis(frame, metrics=("roc_auc",), n_resamples=20, seed=0)
    assert all(math.isnan(v) for v in cis["pooled"]["roc_auc"])
    generic = client_bootstrap(frame, lambda f: roc_auc(f["label"], f["risk"]), n_resamples=20, seed=0)
    assert all(math.isnan(v) for v in generic["value"])


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError):
        bootstrap_metric_cis(landmark_frame(20), metrics=("accuracy",), n_resamples=5)


def test_paired_difference_of_identical_scores_is_zero_with_p_one():
    frame = landmark_frame(300, seed=9)
    frame["copy"] = frame["risk"]
    out = paired_bootstrap_difference(frame, "risk", "copy", n_resamples=200)
    assert out["delta"] == 0.0
    assert out["ci"] == [0.0, 0.0]
    assert out["p_value"] == 1.0


def test_paired_difference_detects_a_clearly_better_score():
    frame = landmark_frame(400, seed=10)
    rng = np.random.default_rng(10)
    frame["noisy"] = np.clip(frame["risk"] + rng.normal(0, 0.3, len(frame)), 0, 1)
    out = paired_bootstrap_difference(frame, "risk", "noisy", n_resamples=500, seed=1)
    expected = roc_auc(frame["label"], frame["risk"]) - roc_auc(frame["label"], frame["noisy"])
    assert out["delta"] == pytest.approx(expected)
    lo, hi = out["ci"]
    assert 0.0 < lo <= out["delta"] <= hi
    assert out["p_value"] < 0.01
    reverse = paired_bootstrap_difference(frame, "noisy", "risk", n_resamples=500, seed=1)
    assert reverse["ci"][1] < 0.0


def _calibrated_trial(n_clients: int, seed: int) -> pd.DataFrame:
    """A trial-sized cohort scored by a nearly calibrated model: 1-8 sessions, a client's risk steady."""
    rng = np.random.default_rng(seed)
    sessions = rng.integers(1, 9, n_clients)
    client = np.repeat(np.arange(n_clients), sessions)
    risk = 1 / (1 + np.exp(-rng.normal(-1.2, 0.9, n_clients)))
    label = (rng.random(n_clients) < risk).astype(int)
    return pd.DataFrame(
        {
            "client_id": client,
            "landmark": np.concatenate([np.arange(1, k + 1) for k in sessions]),
            "risk": np.clip(risk[client] + 0.02 * rng.normal(size=client.size), 0.01, 0.99),
            "label": label[client],
        }
    )


def test_the_ece_interval_contains_the_ece_on_trial_sized_data():
    """Resampled ECEs sit above the estimate (noise only adds to absolute gaps); with 150 clients a
    percentile interval missed the estimate pooled in 3 of 20 seeds and at some landmark in 8."""
    for seed in range(20):
        frame = _calibrated_trial(150, seed)
        cis = bootstrap_metric_cis(frame, metrics=("ece", "roc_auc"), n_resamples=200, seed=seed)
        point = evaluate(frame)
        for scope, ci in [("pooled", cis["pooled"])] + list(cis["by_landmark"].items()):
            estimate = (point["pooled"] if scope == "pooled" else point["by_landmark"][scope])["ece"]
            lo, hi = ci["ece"]
            assert 0 <= lo <= estimate <= hi, (seed, scope, lo, estimate, hi)
            assert hi - lo > 0.01, (seed, scope)  # an interval, not the point


def test_recentred_interval_is_the_percentile_interval_moved_to_the_estimate():
    values = np.array([0.10, 0.12, 0.13, 0.14, 0.20, np.nan])
    lo, hi = percentile_interval(values, 0.5)
    assert recentred_interval(values, 0.05, 0.5) == pytest.approx((lo - 0.08, hi - 0.08))
    assert recentred_interval(values, 0.0, 0.95)[0] == 0.0  # floored: an ECE is never negative
    assert all(math.isnan(v) for v in recentred_interval([np.nan], 0.1))


def test_the_intervals_do_not_depend_on_the_order_of_the_rows():
    frame = landmark_frame(120, seed=12)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    cis, again = (bootstrap_metric_cis(f, metrics=ALL, n_resamples=30, seed=4) for f in (frame, shuffled))
    for scope in ("pooled", "1", "3"):
        for metric in ALL:
            got = cis["pooled"] if scope == "pooled" else cis["by_landmark"][scope]
            want = again["pooled"] if scope == "pooled" else again["by_landmark"][scope]
            np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9, err_msg=f"{scope} {metric}")
    stat = lambda f: brier(f["label"], f["risk"])  # noqa: E731
    generic, generic_again = (client_bootstrap(f, stat, n_resamples=30, seed=4) for f in (frame, shuffled))
    np.testing.assert_allclose(generic["value"], generic_again["value"], rtol=1e-9)
    paired = (
        paired_bootstrap_difference(f.assign(other=1 - f["risk"]), "risk", "other", n_resamples=30)
        for f in (frame, shuffled)
    )
    assert next(paired)["ci"] == pytest.approx(next(paired)["ci"], rel=1e-9)


def test_landmarks_are_reported_in_numeric_order():
    frame = landmark_frame(200, seed=13, max_landmarks=12)  # rows shuffled: landmark 12 may come first
    assert list(bootstrap_metric_cis(frame, metrics=("brier",), n_resamples=5)["by_landmark"]) == [
        str(k) for k in range(1, 13)
    ]


def test_a_client_column_of_another_name_is_resampled_by_that_column():
    frame = landmark_frame(80, seed=14)
    renamed = frame.rename(columns={"client_id": "patient"})
    cis = bootstrap_metric_cis(frame, metrics=("brier",), n_resamples=20, seed=2)
    assert bootstrap_metric_cis(renamed, client="patient", metrics=("brier",), n_resamples=20, seed=2) == cis
    stat = lambda f: brier(f["label"], f["risk"])  # noqa: E731
    generic = client_bootstrap(frame, stat, n_resamples=20, seed=2)
    assert client_bootstrap(renamed, stat, client="patient", n_resamples=20, seed=2) == generic
    paired = paired_bootstrap_difference(frame.assign(b=frame["risk"] ** 2), "risk", "b", n_resamples=20)
    assert (
        paired_bootstrap_difference(renamed.assign(b=frame["risk"] ** 2), "risk", "b", client="patient", n_resamples=20)
        == paired
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda f: bootstrap_metric_cis(f.drop(columns="landmark"), n_resamples=5),
            r"bootstrap_metric_cis needs column(s) ['landmark']",
        ),
        (
            lambda f: paired_bootstrap_difference(f, "risk", "other", n_resamples=5),
            r"paired_bootstrap_difference needs column(s) ['other']",
        ),
        (
            lambda f: bootstrap_metric_cis(f, metrics=("accuracy",), n_resamples=5),
            "no bootstrap for metric(s) ['accuracy']; choose from [",
        ),
        (lambda f: client_bootstrap(f, len, client="patient", n_resamples=5), "client column 'patient' not found"),
        (
            lambda f: client_bootstrap(f.assign(client_id=None), len, n_resamples=5),
            "client column 'client_id' has missing values",
        ),
        (lambda f: client_bootstrap(f, len, n_resamples=0), "n_resamples must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_wrong(call, message):
    with pytest.raises(ValueError) as refused:
        call(landmark_frame(20))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.5])
def test_a_confidence_outside_zero_to_one_is_refused(confidence):
    with pytest.raises(ValueError, match=r"^confidence must lie within \(0, 1\)$"):
        percentile_interval([0.1, 0.2, 0.3], confidence)


def test_the_percentile_interval_cuts_half_the_remainder_from_each_tail():
    values = np.arange(101.0)  # the k-th percentile is k
    assert percentile_interval(values) == pytest.approx((2.5, 97.5))
    assert percentile_interval(values, 0.5) == pytest.approx((25.0, 75.0))
    assert recentred_interval(values + 10.0, 50.0) == pytest.approx((2.5, 97.5))  # the same default


def _with_a_noisier_score(frame: pd.DataFrame) -> pd.DataFrame:
    noise = np.random.default_rng(0).normal(0, 0.2, len(frame))
    return frame.assign(other=np.clip(frame["risk"] + noise, 0, 1))


def test_a_lower_confidence_gives_narrower_intervals_on_every_route():
    frame = _with_a_noisier_score(landmark_frame(150, seed=15))
    wide, narrow = (bootstrap_metric_cis(frame, metrics=ALL, n_resamples=40, confidence=c) for c in (0.95, 0.5))
    for metric in ALL:
        (wide_lo, wide_hi), (lo, hi) = wide["pooled"][metric], narrow["pooled"][metric]
        assert wide_lo < lo < hi < wide_hi, metric
    stat = lambda f: {"brier": brier(f["label"], f["risk"]), "ece": expected_calibration_error(f["label"], f["risk"])}  # noqa: E731
    wide_g, narrow_g = (client_bootstrap(frame, stat, n_resamples=40, confidence=c) for c in (0.95, 0.5))
    for metric in ("brier", "ece"):
        assert wide_g[metric][0] < narrow_g[metric][0] < narrow_g[metric][1] < wide_g[metric][1], metric
    wide_p, narrow_p = (
        paired_bootstrap_difference(frame, "risk", "other", n_resamples=40, confidence=c) for c in (0.95, 0.5)
    )
    assert wide_p["ci"][0] < narrow_p["ci"][0] < narrow_p["ci"][1] < wide_p["ci"][1]


def test_a_single_client_gives_a_point_interval_and_one_resample_is_enough():
    frame = landmark_frame(1, seed=16, max_landmarks=4)
    assert client_bootstrap(frame, lambda f: f["risk"].mean(), n_resamples=10)["value"] == (
        pytest.approx(frame["risk"].mean()),
        pytest.approx(frame["risk"].mean()),
    )
    assert np.isfinite(client_bootstrap(landmark_frame(30), lambda f: f["risk"].mean(), n_resamples=1)["value"]).all()


def test_every_client_can_be_drawn():
    assert set(draw_clients(5, 200, seed=0).ravel()) == {0, 1, 2, 3, 4}


def test_a_drawn_client_brings_its_rows_in_their_order_and_the_frames_columns_only():
    frame = landmark_frame(40, seed=17).sort_values("landmark", kind="stable").reset_index(drop=True)
    # Rows ordered by landmark: each client's rows in session order, the clients interleaved.

    def stat(sample: pd.DataFrame) -> dict[str, float]:
        in_order = sample.groupby("client_id", sort=False)["landmark"].apply(lambda s: s.is_monotonic_increasing)
        return {"in_order": float(in_order.all()), "columns": float(list(sample.columns) == list(frame.columns))}

    assert client_bootstrap(frame, stat, n_resamples=20) == {"in_order": (1.0, 1.0), "columns": (1.0, 1.0)}


def test_the_paired_difference_counts_its_resamples_and_its_p_value_is_the_tail_share():
    frame = landmark_frame(400, seed=10)
    rng = np.random.default_rng(10)
    frame["noise"] = rng.random(len(frame))  # no signal at all: every resampled difference is positive
    out = paired_bootstrap_difference(frame, "risk", "noise", n_resamples=500, seed=1)
    assert out["n_resamples_used"] == 500
    assert out["p_value"] == 2 / 501  # no resample at or below 0: (0 + 1) in 501, both tails
    assert out == paired_bootstrap_difference(frame, "risk", "noise", n_resamples=500, seed=1)  # the seed fixes it


def test_a_paired_difference_undefined_in_every_resample_says_so():
    frame = landmark_frame(30, seed=18).assign(label=0, other=lambda f: f["risk"] ** 2)
    out = paired_bootstrap_difference(frame, "risk", "other", n_resamples=20)
    assert out["n_resamples_used"] == 0 and math.isnan(out["p_value"]) and math.isnan(out["delta"])
    assert all(math.isnan(v) for v in out["ci"])
    assert set(out) == {"delta", "ci", "p_value", "n_resamples_used"}


def test_resamples_are_split_into_blocks_that_bound_memory_and_cover_each_resample_once():
    for n_resamples, n_rows in [(200, 1), (3_000_000, 1), (1000, 30_000), (5, 3_000_000), (7, 0)]:
        blocks = list(_blocks(n_resamples, n_rows))
        covered = [i for block in blocks for i in range(n_resamples)[block]]
        assert covered == list(range(n_resamples)), (n_resamples, n_rows)
        size = max(1, _BLOCK_CELLS // max(n_rows, 1))  # as many resamples as fit, at least one
        assert all(len(range(n_resamples)[b]) == size for b in blocks[:-1]), (n_resamples, n_rows)


def test_blocking_the_resamples_does_not_change_the_intervals(monkeypatch):
    frame = _with_a_noisier_score(landmark_frame(100, seed=19))
    whole = bootstrap_metric_cis(frame, metrics=ALL, n_resamples=30, seed=5)
    paired = paired_bootstrap_difference(frame, "risk", "other", n_resamples=30, seed=5)
    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", 7 * len(frame))  # blocks of 7 resamples
    blocked = bootstrap_metric_cis(frame, metrics=ALL, n_resamples=30, seed=5)
    for scope in ["pooled", *[f"by_landmark {k}" for k in whole["by_landmark"]]]:
        got, want = (c["pooled"] if scope == "pooled" else c["by_landmark"][scope[12:]] for c in (blocked, whole))
        for metric in ALL:
            np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9, err_msg=f"{scope} {metric}")
    assert paired_bootstrap_difference(frame, "risk", "other", n_resamples=30, seed=5)["ci"] == pytest.approx(
        paired["ci"], rel=1e-9
    )
