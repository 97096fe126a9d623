"""The comparison's statistics: per-set metrics with client-bootstrap CIs, and every pair of sets.

Each set's lead figure is its within-landmark AUC (``training.evaluation.within_landmark``);
the pooled AUC includes the session-number effect. Pairs get, for the within-landmark and the
pooled AUC difference, a paired client bootstrap (percentile CI, two-sided p), a Holm
adjustment over all pairs, and Nadeau & Bengio's corrected resampled t-test on the per-fold
differences (the refit-aware check). A pair is marked on the within-landmark difference only,
when all three agree (``result.WithinLandmarkDelta.marked``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

from dropout_risk.features.spec import LANDMARK
from dropout_risk.training.comparison.folds import Fold
from dropout_risk.training.comparison.result import (
    ALPHA,
    CONFIDENCE,
    CvTest,
    Interval,
    LandmarkDelta,
    Metrics,
    PairResult,
    SetMetrics,
    WithinLandmarkDelta,
)
from dropout_risk.training.evaluation.bootstrap import bootstrap_metric_cis, paired_bootstrap_difference
from dropout_risk.training.evaluation.metrics import (
    brier,
    calibration_slope_intercept,
    expected_calibration_error,
    landmark_key,
    pr_auc,
    roc_auc,
)
from dropout_risk.training.evaluation.stratified_within import (
    StratifiedResamples,
    stratified_resamples,
    stratified_within_landmark_auc,
)

Progress = Callable[[str], None]
# Metrics with a bootstrap CI. The calibration intercept is reported without one: its batched fit
# is as costly as the slope's, and after recalibration it sits at about 0 by construction.
CI_METRICS = ("roc_auc", "pr_auc", "brier", "calibration_slope", "ece")


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(cis: Mapping[str, Sequence[float]], metric: str) -> Interval:
    lo, hi = cis.get(metric, [math.nan, math.nan])
    return (lo, hi)


def _metrics(frame: pd.DataFrame, cis: Mapping[str, Sequence[float]]) -> Metrics:
    """Point metrics of ``frame`` (label, risk) with the given CIs, and its counts."""
    y, p = frame["label"].to_numpy(dtype=float), frame["risk"].to_numpy(dtype=float)
    slope, intercept = calibration_slope_intercept(y, p)
    return Metrics(
        roc_auc=roc_auc(y, p),
        roc_auc_ci=_interval(cis, "roc_auc"),
        pr_auc=pr_auc(y, p),
        pr_auc_ci=_interval(cis, "pr_auc"),
        brier=brier(y, p),
        brier_ci=_interval(cis, "brier"),
        calibration_slope=slope,
        calibration_slope_ci=_interval(cis, "calibration_slope"),
        calibration_intercept=intercept,
        ece=expected_calibration_error(y, p),
        ece_ci=_interval(cis, "ece"),
        n_rows=int(len(frame)),
        n_clients=int(frame["client_id"].nunique()),
        n_events=int(y.sum()),
        prevalence=float(y.mean()) if len(y) else math.nan,
    )


def informative_from(by_landmark: Mapping[str, Metrics], evaluable: Sequence[int] | None = None) -> int | None:
    """First landmark from which the AUC's lower 95% bound stays above 0.5 (None if it never does).

    Only ``evaluable`` landmarks count (default: all): one where a class is missing or rare has no
    AUC worth the name, and must not turn "from session 2" into "never".
    """
    keys = sorted(by_landmark if evaluable is None else [landmark_key(k) for k in evaluable], key=int)
    first = None
    for key in reversed(keys):
        lo = by_landmark[key].roc_auc_ci[0]
        if lo is None or not math.isfinite(lo) or lo <= 0.5:
            break
        first = int(key)
    return first


def out_of_fold_frame(by_repeat: np.ndarray, folds: list[Fold], rows: pd.DataFrame) -> pd.DataFrame:
    """Every held-out row of every repeat's folds: client_id, session_number, label, repeat, fold, ``risk_<i>``.

    What ``stratified_within`` compares within folds: a fold's model scored only its own clients.
    """
    parts = []
    for fold in folds:
        part = rows.iloc[fold.valid]
        parts.append(
            pd.DataFrame(
                {
                    "client_id": part["client_id"].to_numpy(),
                    "session_number": part[LANDMARK].to_numpy(),
                    "label": part["label"].to_numpy(),
                    "repeat": fold.repeat,
                    "fold": fold.fold,
                    **{f"risk_{s}": by_repeat[s, fold.repeat, fold.valid] for s in range(by_repeat.shape[0])},
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def set_metrics(
    frame: pd.DataFrame, oof: pd.DataFrame, *, n_resamples: int, seed: int, min_class_clients: int
) -> SetMetrics:
    """Within-landmark, pooled and per-landmark metrics of ``frame`` (client_id, landmark, label, risk) with CIs.

    The within-landmark AUC is of ``oof`` (``out_of_fold_frame``'s rows, this set's as ``risk``): it
    compares clients within the fold that scored them; the other figures are of ``frame``.
    """
    cis = bootstrap_metric_cis(frame, metrics=CI_METRICS, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE)
    by_landmark = {
        landmark_key(k): _metrics(rows, cis["by_landmark"].get(landmark_key(k), {}))
        for k, rows in frame.groupby(LANDMARK, sort=True)
    }
    within = stratified_within_landmark_auc(
        oof, "risk", min_class_clients=min_class_clients, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE
    )
    return SetMetrics(
        _metrics(frame, cis["pooled"]), by_landmark, informative_from(by_landmark, within.landmarks), within
    )


def all_set_metrics(
    scored: pd.DataFrame,
    oof: pd.DataFrame,
    names: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
    min_class_clients: int,
    n_jobs: int = 1,
    say: Progress | None = None,
) -> list[SetMetrics]:
    """``set_metrics`` for every ``risk_<i>`` column of ``scored`` and ``oof`` (threads; the same resamples)."""
    say = say or (lambda _message: None)

    def run(i: int) -> tuple[int, SetMetrics]:
        frame = scored[["client_id", LANDMARK, "label", f"risk_{i}"]].rename(columns={f"risk_{i}": "risk"})
        folds = oof.rename(columns={f"risk_{i}": "risk"})
        return i, set_metrics(frame, folds, n_resamples=n_resamples, seed=seed, min_class_clients=min_class_clients)

    results: dict[int, SetMetrics] = {}
    runner = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")
    for done, (i, metrics) in enumerate(runner(delayed(run)(i) for i in range(len(names))), start=1):
        results[i] = metrics
        say(f"bootstrap CIs {done}/{len(names)}: {names[i]}")
    return [results[i] for i in range(len(names))]


# --- pairs ------------------------------------------------------------------------------------


def per_fold_aucs(by_repeat: np.ndarray, folds: list[Fold], y: np.ndarray) -> np.ndarray:
    """ROC AUC of every set on every held-out fold (sets x folds), from that repeat's predictions."""
    return np.array(
        [[roc_auc(y[f.valid], by_repeat[s, f.repeat, f.valid]) for f in folds] for s in range(by_repeat.shape[0])]
    )


def per_fold_within_aucs(
    by_repeat: np.ndarray, folds: list[Fold], rows: pd.DataFrame, landmarks: Sequence[int]
) -> np.ndarray:
    """Within-landmark AUC of every set on every held-out fold (sets x folds).

    The mean of the fold's per-landmark AUCs over the evaluable ``landmarks`` (those of the whole
    comparison); a landmark with one class in a fold is left out of that fold's mean.
    """
    y = rows["label"].to_numpy(dtype=float)
    at = rows[LANDMARK].to_numpy()
    out = np.full((by_repeat.shape[0], len(folds)), np.nan)
    for f, fold in enumerate(folds):
        parts = [fold.valid[at[fold.valid] == k] for k in landmarks]
        for s in range(by_repeat.shape[0]):
            aucs = [roc_auc(y[part], by_repeat[s, fold.repeat, part]) for part in parts]
            finite = [a for a in aucs if math.isfinite(a)]
            out[s, f] = float(np.mean(finite)) if finite else math.nan
    return out


def held_out_ratio(folds: list[Fold], rows: pd.DataFrame) -> float:
    """Mean over folds of held-out clients / training clients (the t-test's correction)."""
    clients = rows["client_id"].to_numpy()
    return float(np.mean([len(np.unique(clients[f.valid])) / len(np.unique(clients[f.train])) for f in folds]))


def corrected_cv_test(deltas: Sequence[float] | np.ndarray, test_train_ratio: float) -> CvTest:
    """Nadeau & Bengio's corrected resampled t-test on per-fold AUC differences.

    Fold results share training clients, so their plain variance understates how much the
    difference would move with other training data; the correction inflates it by
    ``1/J + n_test/n_train`` (J folds in all). This counts the refitting variability the
    client bootstrap of fixed predictions leaves out.
    """
    finite = np.asarray(deltas, dtype=float)
    finite = finite[np.isfinite(finite)]
    n = finite.size
    if n < 2:
        mean = _finite_or_none(finite.mean()) if n else None
        return CvTest(mean_delta_auc=mean, ci=(None, None), p_value=None, df=max(n - 1, 0), n_folds=int(n))
    mean = float(finite.mean())
    se = math.sqrt((1.0 / n + test_train_ratio) * float(finite.var(ddof=1)))
    df = n - 1
    if se == 0.0:
        p_value = 1.0 if mean == 0.0 else 0.0
        ci = (mean, mean)
    else:
        p_value = float(2.0 * stats.t.sf(abs(mean / se), df))
        half = float(stats.t.ppf(1.0 - ALPHA / 2.0, df)) * se
        ci = (mean - half, mean + half)
    return CvTest(mean_delta_auc=mean, ci=ci, p_value=p_value, df=df, n_folds=int(n))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN counts as 1)."""
    p = np.array([1.0 if not math.isfinite(v) else v for v in p_values], dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def _pair(
    scored: pd.DataFrame,
    i: int,
    j: int,
    within: StratifiedResamples,
    *,
    n_resamples: int,
    landmark_resamples: int,
    seed: int,
) -> tuple[dict, dict, dict[str, LandmarkDelta]]:
    """The paired bootstraps of ``risk_<i>`` against ``risk_<j>``: pooled, within landmarks (within folds,
    from every set's one resampling), per landmark."""
    a, b = f"risk_{i}", f"risk_{j}"
    pooled = paired_bootstrap_difference(scored, a, b, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE)
    by_landmark = {}
    for k, rows in scored.groupby(LANDMARK, sort=True):
        per = paired_bootstrap_difference(rows, a, b, n_resamples=landmark_resamples, seed=seed, confidence=CONFIDENCE)
        by_landmark[landmark_key(k)] = LandmarkDelta(per["delta"], tuple(per["ci"]), per["p_value"])
    return pooled, within.paired(a, b, CONFIDENCE), by_landmark


def compare_pairs(
    scored: pd.DataFrame,
    oof: pd.DataFrame,
    names: Sequence[str],
    fold_aucs: np.ndarray,
    fold_within_aucs: np.ndarray,
    test_train_ratio: float,
    *,
    n_resamples: int,
    landmark_resamples: int,
    seed: int,
    min_class_clients: int,
    n_jobs: int = 1,
    say: Progress | None = None,
) -> list[PairResult]:
    """AUC(a) - AUC(b) for every pair (a before b in ``names``) on the same resampled clients.

    ``scored`` holds client_id, landmark, label and one risk column per set, named ``risk_<i>``, and
    ``oof`` the same risks per fold (``out_of_fold_frame``) for the within-landmark differences;
    ``fold_aucs`` and ``fold_within_aucs`` (sets x folds: pooled and within-landmark AUC per
    held-out fold) feed the refit-aware ``cv_test`` of the pooled and the within-landmark difference.
    """
    say = say or (lambda _message: None)
    index_pairs = list(combinations(range(len(names)), 2))
    say("within-session bootstrap of every set")
    # Every set resampled once, within folds, on the same drawn clients: a pair's difference is a subtraction.
    resampled = stratified_resamples(
        oof,
        [f"risk_{i}" for i in range(len(names))],
        min_class_clients=min_class_clients,
        n_resamples=n_resamples,
        seed=seed,
    )

    def run(n: int) -> tuple[int, _PairFigures]:
        i, j = index_pairs[n]
        return n, _pair(
            scored, i, j, resampled, n_resamples=n_resamples, landmark_resamples=landmark_resamples, seed=seed
        )

    results: dict[int, _PairFigures] = {}
    runner = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")
    for done, (n, result) in enumerate(runner(delayed(run)(n) for n in range(len(index_pairs))), start=1):
        results[n] = result
        say(f"paired bootstrap {done}/{len(index_pairs)}: {names[index_pairs[n][0]]} vs {names[index_pairs[n][1]]}")
    return _pair_results(names, index_pairs, results, fold_aucs, fold_within_aucs, test_train_ratio)


_PairFigures = tuple[dict, dict, dict[str, LandmarkDelta]]  # pooled, within-session, per landmark


def _pair_results(
    names: Sequence[str],
    index_pairs: list[tuple[int, int]],
    results: dict[int, _PairFigures],
    fold_aucs: np.ndarray,
    fold_within_aucs: np.ndarray,
    test_train_ratio: float,
) -> list[PairResult]:
    """Each pair's figures with Holm-adjusted p-values (over all pairs) and the refit-aware CV tests."""
    pooled_holm = holm([results[n][0]["p_value"] for n in range(len(index_pairs))])
    within_holm = holm([results[n][1]["p_value"] for n in range(len(index_pairs))])
    out = []
    for n, (i, j) in enumerate(index_pairs):
        pooled, within, by_landmark = results[n]
        within_delta = WithinLandmarkDelta(
            delta_auc=within["delta"],
            ci=(within["ci"][0], within["ci"][1]),
            p_value=within["p_value"],
            p_value_holm=within_holm[n],
            cv_test=corrected_cv_test(fold_within_aucs[i] - fold_within_aucs[j], test_train_ratio),
            landmarks=tuple(within["landmarks"]),
        )
        cv_test = corrected_cv_test(fold_aucs[i] - fold_aucs[j], test_train_ratio)
        out.append(_pair_result(names[i], names[j], pooled, by_landmark, cv_test, pooled_holm[n], within_delta))
    return out


def _pair_result(
    a: str,
    b: str,
    pooled: dict,
    by_landmark: dict[str, LandmarkDelta],
    cv_test: CvTest,
    p_value_holm: float,
    within: WithinLandmarkDelta,
) -> PairResult:
    lo, hi = pooled["ci"]
    return PairResult(
        a=a,
        b=b,
        delta_auc=pooled["delta"],
        ci=(lo, hi),
        p_value=pooled["p_value"],
        ci_excludes_zero=bool(lo > 0 or hi < 0),
        n_resamples=pooled["n_resamples_used"],
        cv_test=cv_test,
        by_landmark=by_landmark,
        p_value_holm=p_value_holm,
        within_landmark=within,
    )
