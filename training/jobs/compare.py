"""Feature-set comparison: which scores predict dropout, and from which session on.

``compare`` evaluates several feature sets (named groups joined by ``+``, or sets
defined in the config) with one model recipe on the SAME out-of-fold design and
reports, per set, ROC AUC, PR AUC, Brier score and calibration with client-bootstrap
95% CIs (pooled and per landmark), and for every pair of sets the AUC difference on
the same clients with a paired client-bootstrap CI and p-value.

Design, and why
---------------
* **Out-of-fold predictions on shared folds.** Clients are split into ``folds``
  client-grouped, outcome-stratified folds (``training.splits.grouped_folds``, seed
  ``seed + repeat``); every set is fitted on exactly the same training rows and
  predicts exactly the same held-out rows, with the same model seed. Each set records
  the fold assignment it actually used (``fold_digest``), so "same folds" is checked,
  not assumed. With ``repeats`` > 1 each row's risk is averaged over the repeats
  before any metric, so there is still one prediction per row.
* **Expected trajectories are refitted on each fold's training clients.** The
  outcome features ``*_expected_dev`` and ``*_off_track`` compare a client with a
  curve fitted on clients; fitted on everyone, a held-out client's own scores would
  shape the curve it is judged against, flattering exactly the outcome sets we are
  comparing. Refitting per fold costs about 0.1 s per fold (``build_features`` is
  vectorised), so the honest choice is also cheap. (Training rows are described with
  the curve their own clients helped fit, as in ``dropout-risk train``.)
* **Calibration as in ``train``: learnt from out-of-fold predictions.** Each held-out
  fold's predictions are recalibrated (``training.calibration``, Platt by default) by a
  calibrator fitted on the out-of-fold predictions of that fold's training clients
  (the other folds of the same repeat), so no row's label touches its own calibrator.
  The alternative, inner grouped CV inside every training fold, costs three to four
  times the fits and learns the calibrator from models trained on about half the
  data, which then mis-scales the model trained on the whole fold (LightGBM, 3,000
  clients: calibration slope about 1.15 that way, 1.00 this way). ``calibrate = false``
  reports the model's own probabilities instead (the report says which).
* **Statistics resample clients.** Per-set CIs come from
  ``training.evaluation.bootstrap.bootstrap_metric_cis`` (the same resamples for every set);
  pairs from ``paired_bootstrap_difference`` (percentile CI of AUC(a) - AUC(b) over
  resampled clients, two-sided bootstrap p). DeLong's test assumes independent rows,
  which the landmark rows of one client are not; the client bootstrap does not.
  These intervals hold the fitted models fixed: they answer "on these clients, do
  these models differ?", not "would the recipe differ on other training data?". Each
  pair therefore also carries ``cv_test``, Nadeau & Bengio's corrected resampled
  t-test on the per-fold AUC differences, which counts the refitting variability. With
  few folds it is conservative (df = folds x repeats - 1), so it is reported beside
  the mark, not used for it; ``repeats`` > 1 sharpens it and, by averaging each row's
  risk over refits, also steadies the point estimates.
* **Multiple comparisons.** Every pair reports its raw ``p_value`` and a Holm-adjusted
  ``p_value_holm`` over all pairs. A pair is ``marked`` when its 95% CI excludes 0
  AND its Holm-adjusted p is below 0.05 (``ci_excludes_zero`` is the unadjusted
  verdict), so adding sets does not inflate the chance of a spurious mark.
  Per-landmark differences are descriptive (unadjusted). One caveat no test removes:
  on a few thousand clients, uninformative features cost a set some AUC (overfitting),
  a real and reproducible difference of the *recipe* that can be marked although the
  scores carry no information. Compare sets of similar size, or read a small marked
  difference together with ``cv_test`` and more clients or repeats.
* Hyperparameters are the fixed defaults of ``models.estimators`` (no tuning): tuning
  per set would make the comparison partly about the tuner.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.contract import ContractError
from dropout_risk.features.landmarks import build_features
from dropout_risk.features.spec import GROUP_NAMES, LANDMARK, FeatureSpec, infer_spec
from dropout_risk.features.trajectories import fit_expected_trajectories
from dropout_risk.models.calibration import ProbabilityCalibrator
from dropout_risk.models.estimators import make_candidate
from dropout_risk.training.compare_settings import GROUP_JOINER, SET_SEPARATOR, CompareSettings
from dropout_risk.training.data import load_contract
from dropout_risk.training.evaluation.bootstrap import bootstrap_metric_cis, paired_bootstrap_difference
from dropout_risk.training.evaluation.metrics import (
    brier,
    calibration_slope_intercept,
    expected_calibration_error,
    landmark_key,
    pr_auc,
    roc_auc,
)
from dropout_risk.training.evaluation.plots import plot_by_landmark, plot_roc
from dropout_risk.training.splits import check_enough_clients, grouped_folds
from dropout_risk.training.tracking import log_dataset, use_experiment

Progress = Callable[[str], None]

DEFAULT_FEATURE_SETS = ("outcome", "alliance", "outcome+alliance", "outcome+alliance+attendance+covariates")
MODELS = ("lightgbm", "logistic")
# Metrics with a bootstrap CI. The calibration intercept is reported without one: its batched fit
# is as costly as the slope's, and after recalibration it sits at about 0 by construction.
CI_METRICS = ("roc_auc", "pr_auc", "brier", "calibration_slope", "ece")
POINT_METRICS = ("roc_auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece")
CONFIDENCE = 0.95
ALPHA = 0.05  # two-sided, matching the 95% intervals
MAX_LANDMARK = 52  # FeatureConfig.max_landmark's upper bound
REPORT_KIND = "feature_set_comparison"


class CompareError(ValueError):
    """A problem the user can fix (bad set name, bad landmarks, unusable data); exit 1."""


class FeatureSetError(CompareError):
    pass


class CompareDataError(CompareError):
    pass


# --- feature sets and landmarks -------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    name: str
    groups: tuple[str, ...]  # feature groups named
    features: tuple[str, ...]  # feature columns named explicitly
    columns: tuple[str, ...]  # the model inputs: landmark + the union, in feature_columns order


def split_set_names(text: str | Sequence[str] | None) -> list[str] | None:
    """``"outcome,alliance"`` -> ``["outcome", "alliance"]`` (a list passes through, stripped)."""
    if text is None:
        return None
    parts = text.split(SET_SEPARATOR) if isinstance(text, str) else list(text)
    names = [p.strip() for p in parts]
    if not names or any(not n for n in names):
        raise FeatureSetError("--feature-sets has an empty name (use e.g. outcome,alliance,outcome+alliance)")
    return names


def parse_landmarks(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"1-6"``, ``"3"``, ``"1,2,5"`` or ``"1-3,6"`` -> sorted unique landmark sessions."""
    if text is None:
        return None
    if not isinstance(text, str):
        values = [int(v) for v in text]
    else:
        values = []
        for part in (p.strip() for p in text.split(",")):
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not match:
                raise CompareError(f"--landmarks {text!r}: use a session, a range or a list (3, 1-6, 1,2,5)")
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) else lo
            if hi < lo:
                raise CompareError(f"--landmarks {text!r}: range {part} runs backwards")
            values.extend(range(lo, hi + 1))
    if not values:
        raise CompareError("--landmarks names no session")
    bad = [v for v in values if not 1 <= v <= MAX_LANDMARK]
    if bad:
        raise CompareError(f"--landmarks: sessions must lie within 1-{MAX_LANDMARK} (got {bad[0]})")
    return tuple(sorted(set(values)))


def resolve_feature_sets(
    names: Sequence[str], spec: FeatureSpec, defined: Mapping[str, Sequence[str]]
) -> tuple[list[FeatureSet], list[str]]:
    """The sets named (config-defined first, else groups/features joined by ``+``), and warnings.

    Raises ``FeatureSetError`` naming the first unknown name, a duplicate, or a set
    with no feature in these data.
    """
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise FeatureSetError(f"feature set {duplicates[0]!r} is listed twice")
    groups = spec.groups()
    all_columns = spec.feature_columns()
    sets, warnings = [], []
    for name in names:
        entries = [e.strip() for e in (defined[name] if name in defined else name.split(GROUP_JOINER))]
        if any(not e for e in entries):
            raise FeatureSetError(f"feature set {name!r} has an empty part (join groups with '+')")
        unknown = [e for e in entries if e not in groups and e not in all_columns]
        if unknown:
            known_sets = ", ".join(defined) or "none"
            what = "feature set, group or feature" if name == unknown[0] else "group or feature"
            raise FeatureSetError(
                f"unknown {what} {unknown[0]!r} in feature set {name!r} (groups: {', '.join(GROUP_NAMES)}; "
                f"sets in the config: {known_sets}; or a feature column of the landmark table)"
            )
        named_groups = tuple(dict.fromkeys(e for e in entries if e in groups))
        features = tuple(dict.fromkeys(e for e in entries if e not in groups))
        for group in named_groups:
            if not groups[group]:
                warnings.append(f"feature set {name!r}: group {group!r} has no columns in these data")
        chosen = {c for g in named_groups for c in groups[g]} | set(features)
        columns = tuple(c for c in all_columns if c == LANDMARK or c in chosen)
        if len(columns) == 1 and LANDMARK not in features:
            raise FeatureSetError(
                f"feature set {name!r} has no features in these data (its groups are empty: "
                f"no instrument or covariate of that kind has data)"
            )
        sets.append(FeatureSet(name, named_groups, features, columns))
    return sets, warnings


# --- data -------------------------------------------------------------------------------------


@dataclass
class _Data:
    sessions: pd.DataFrame  # sessions of ended episodes
    episodes: pd.DataFrame  # ended episodes
    n_ongoing: int
    spec: FeatureSpec
    keep: np.ndarray  # rows of build_features(...) at the chosen landmarks
    rows: pd.DataFrame  # client_id, landmark, label of the kept rows (RangeIndex)
    landmarks: tuple[int, ...]


def _load(
    sessions_path: Path,
    episodes_path: Path,
    settings: CompareSettings,
    landmarks: tuple[int, ...] | None,
    warnings: list[str],
) -> _Data:
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
    config = FeatureConfig(max_landmark=max_landmark, off_track_z=settings.features.off_track_z)
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
    return _Data(sessions, ended, n_ongoing, spec, keep, rows, landmarks)


def _client_labels(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("client_id", sort=True)["label"].first()


def _fold_frame(data: _Data, train_clients: np.ndarray) -> pd.DataFrame:
    """All kept rows, with expected trajectories fitted on ``train_clients`` only."""
    train_sessions = data.sessions[data.sessions["client_id"].isin(train_clients)]
    trajectories = fit_expected_trajectories(train_sessions, data.spec)
    frame = build_features(data.sessions, data.episodes, data.spec, trajectories)[data.keep].reset_index(drop=True)
    if not frame["client_id"].equals(data.rows["client_id"]) or not frame[LANDMARK].equals(data.rows[LANDMARK]):
        raise RuntimeError("landmark rows differ between feature builds")  # build_features sorts: cannot happen
    return frame


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


# --- fitting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fold:
    repeat: int
    fold: int
    train: np.ndarray  # row positions of the training clients
    valid: np.ndarray  # row positions of the held-out clients
    frame: pd.DataFrame  # features with this fold's trajectories


def _make_folds(data: _Data, settings: CompareSettings, folds: int, repeats: int) -> list[_Fold]:
    check_enough_clients(
        _client_labels(data.rows),
        folds=folds,
        min_per_fold=settings.training.min_clients_per_fold,
        what="clients with a landmark row",
    )
    out = []
    for repeat in range(repeats):
        for fold, (train, valid) in enumerate(
            grouped_folds(data.rows, folds=folds, seed=settings.compare.seed + repeat)
        ):
            frame = _fold_frame(data, data.rows["client_id"].iloc[train].unique())
            out.append(_Fold(repeat, fold, train, valid, frame))
    return out


def _model_params(kind: str, settings: CompareSettings, repeat: int) -> dict:
    if kind == "logistic":
        return {"C": settings.training.logistic_c}
    return {"random_state": settings.compare.seed + repeat}


def _fit_predict(kind: str, params: dict, columns: Sequence[str], fold: _Fold) -> np.ndarray:
    """Held-out (uncalibrated) risks of one set on one fold, from a model fitted on the training fold."""
    frame = fold.frame
    y = frame["label"].to_numpy(dtype=int)
    fitted = make_candidate(kind, frame, list(columns), **params).fit(frame.iloc[fold.train], y[fold.train])
    return fitted.predict_proba(frame.iloc[fold.valid])[:, 1]


def calibrate_out_of_fold(raw: np.ndarray, folds: list[_Fold], y: np.ndarray, method: str) -> np.ndarray:
    """Recalibrate each held-out fold with a calibrator fitted on its training rows' OOF predictions.

    ``raw``: sets x repeats x rows of out-of-fold probabilities. The calibrator for fold f of
    repeat r learns from the rows outside f (their predictions came from models that never
    saw them), so no label is used to calibrate its own prediction.
    """
    out = np.empty_like(raw)
    labels = y.astype(int)
    for s in range(raw.shape[0]):
        for fold in folds:
            calibrator = ProbabilityCalibrator(method).fit(raw[s, fold.repeat, fold.train], labels[fold.train])
            out[s, fold.repeat, fold.valid] = calibrator.transform(raw[s, fold.repeat, fold.valid])
    return out


def _out_of_fold_risks(
    sets: list[FeatureSet],
    folds: list[_Fold],
    kind: str,
    settings: CompareSettings,
    n_rows: int,
    repeats: int,
    say: Progress,
) -> tuple[np.ndarray, np.ndarray]:
    """(risks: sets x repeats x rows; assignment: sets x repeats x rows, the fold each row was held out in)."""
    risks = np.full((len(sets), repeats, n_rows), np.nan)
    assignment = np.full((len(sets), repeats, n_rows), -1, dtype=np.int64)
    tasks = [(s, f) for f in range(len(folds)) for s in range(len(sets))]

    def run(s: int, f: int):
        fold = folds[f]
        return s, f, _fit_predict(kind, _model_params(kind, settings, fold.repeat), sets[s].columns, fold)

    runner = Parallel(n_jobs=settings.compare.n_jobs, prefer="threads", return_as="generator_unordered")
    n_folds = len(folds) // repeats
    for done, (s, f, risk) in enumerate(runner(delayed(run)(s, f) for s, f in tasks), start=1):
        fold = folds[f]
        risks[s, fold.repeat, fold.valid] = risk
        assignment[s, fold.repeat, fold.valid] = fold.fold
        say(
            f"fitted {done}/{len(tasks)}: {sets[s].name} (repeat {fold.repeat + 1}/{repeats}, "
            f"fold {fold.fold + 1}/{n_folds})"
        )
    if np.isnan(risks).any():
        raise RuntimeError("some rows got no out-of-fold prediction")
    return risks, assignment


# --- statistics -------------------------------------------------------------------------------


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    slope, intercept = calibration_slope_intercept(y, p)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "brier": brier(y, p),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p),
    }


def _with_cis(frame: pd.DataFrame, cis: Mapping[str, Sequence[float]]) -> dict:
    y, p = frame["label"].to_numpy(dtype=float), frame["risk"].to_numpy(dtype=float)
    out: dict = {}
    for metric, value in _point_metrics(y, p).items():
        out[metric] = value
        if metric in CI_METRICS:
            out[f"{metric}_ci"] = list(cis.get(metric, [math.nan, math.nan]))
    out.update(
        {
            "n_rows": int(len(frame)),
            "n_clients": int(frame["client_id"].nunique()),
            "n_events": int(y.sum()),
            "prevalence": float(y.mean()) if len(y) else math.nan,
        }
    )
    return out


def informative_from(by_landmark: Mapping[str, dict]) -> int | None:
    """First landmark from which the AUC's lower 95% bound stays above 0.5 (None if it never does)."""
    keys = sorted(by_landmark, key=int)
    first = None
    for key in reversed(keys):
        lo = by_landmark[key]["roc_auc_ci"][0]
        if lo is None or not math.isfinite(lo) or lo <= 0.5:
            break
        first = int(key)
    return first


def set_metrics(frame: pd.DataFrame, *, n_resamples: int, seed: int) -> dict:
    """Pooled and per-landmark metrics of ``frame`` (client_id, landmark, label, risk) with CIs."""
    cis = bootstrap_metric_cis(frame, metrics=CI_METRICS, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE)
    out = _with_cis(frame, cis["pooled"])
    out["by_landmark"] = {
        landmark_key(k): _with_cis(rows, cis["by_landmark"].get(landmark_key(k), {}))
        for k, rows in frame.groupby(LANDMARK, sort=True)
    }
    out["informative_from"] = informative_from(out["by_landmark"])
    return out


def _fold_aucs(by_repeat: np.ndarray, folds: list[_Fold], y: np.ndarray) -> np.ndarray:
    """ROC AUC of every set on every held-out fold (sets x folds), from that repeat's predictions."""
    return np.array(
        [[roc_auc(y[f.valid], by_repeat[s, f.repeat, f.valid]) for f in folds] for s in range(by_repeat.shape[0])]
    )


def _test_train_ratio(folds: list[_Fold], rows: pd.DataFrame) -> float:
    clients = rows["client_id"].to_numpy()
    return float(np.mean([len(np.unique(clients[f.valid])) / len(np.unique(clients[f.train])) for f in folds]))


def corrected_cv_test(deltas: np.ndarray, test_train_ratio: float) -> dict:
    """Nadeau & Bengio's corrected resampled t-test on per-fold AUC differences.

    Fold results share training clients, so their plain variance understates how much the
    difference would move with other training data; the correction inflates it by
    ``1/J + n_test/n_train`` (J folds in all). This counts the refitting variability the
    client bootstrap of fixed predictions leaves out.
    """
    deltas = np.asarray(deltas, dtype=float)
    deltas = deltas[np.isfinite(deltas)]
    n = deltas.size
    if n < 2:
        return {
            "mean_delta_auc": _finite_or_none(deltas.mean()) if n else None,
            "ci": [None, None],
            "p_value": None,
            "df": max(n - 1, 0),
            "n_folds": int(n),
        }
    mean = float(deltas.mean())
    se = math.sqrt((1.0 / n + test_train_ratio) * float(deltas.var(ddof=1)))
    df = n - 1
    if se == 0.0:
        p_value = 1.0 if mean == 0.0 else 0.0
        ci = [mean, mean]
    else:
        p_value = float(2.0 * stats.t.sf(abs(mean / se), df))
        half = float(stats.t.ppf(1.0 - ALPHA / 2.0, df)) * se
        ci = [mean - half, mean + half]
    return {"mean_delta_auc": mean, "ci": ci, "p_value": p_value, "df": df, "n_folds": int(n)}


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
    *,
    n_resamples: int,
    landmark_resamples: int,
    seed: int,
    fold_deltas: np.ndarray,
    test_train_ratio: float,
) -> dict:
    a, b = f"risk_{i}", f"risk_{j}"
    result = paired_bootstrap_difference(scored, a, b, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE)
    by_landmark = {}
    for k, rows in scored.groupby(LANDMARK, sort=True):
        per = paired_bootstrap_difference(rows, a, b, n_resamples=landmark_resamples, seed=seed, confidence=CONFIDENCE)
        by_landmark[landmark_key(k)] = {"delta_auc": per["delta"], "ci": per["ci"], "p_value": per["p_value"]}
    lo, hi = result["ci"]
    return {
        "delta_auc": result["delta"],
        "ci": result["ci"],
        "p_value": result["p_value"],
        "ci_excludes_zero": bool(lo > 0 or hi < 0),
        "n_resamples": result["n_resamples_used"],
        "cv_test": corrected_cv_test(fold_deltas, test_train_ratio),
        "by_landmark": by_landmark,
    }


def compare_pairs(
    scored: pd.DataFrame,
    names: Sequence[str],
    fold_aucs: np.ndarray,
    test_train_ratio: float,
    *,
    n_resamples: int,
    landmark_resamples: int,
    seed: int,
    n_jobs: int = 1,
    say: Progress | None = None,
) -> list[dict]:
    """AUC(a) - AUC(b) for every pair (a before b in ``names``) on the same resampled clients.

    ``scored`` holds client_id, landmark, label and one risk column per set, named ``risk_<i>``;
    ``fold_aucs`` (sets x folds) feeds the supplementary refit-aware ``cv_test``.
    """
    say = say or (lambda _message: None)
    index_pairs = list(combinations(range(len(names)), 2))

    def run(n: int):
        i, j = index_pairs[n]
        return n, _pair(
            scored,
            i,
            j,
            n_resamples=n_resamples,
            landmark_resamples=landmark_resamples,
            seed=seed,
            fold_deltas=fold_aucs[i] - fold_aucs[j],
            test_train_ratio=test_train_ratio,
        )

    results: dict[int, dict] = {}
    runner = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")
    for done, (n, result) in enumerate(runner(delayed(run)(n) for n in range(len(index_pairs))), start=1):
        results[n] = result
        say(f"paired bootstrap {done}/{len(index_pairs)}: {names[index_pairs[n][0]]} vs {names[index_pairs[n][1]]}")
    pairs = [{"a": names[i], "b": names[j], **results[n]} for n, (i, j) in enumerate(index_pairs)]
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs]), strict=True):
        pair["p_value_holm"] = adjusted
        pair["marked"] = bool(pair["ci_excludes_zero"] and adjusted < ALPHA)
        pair["better"] = (pair["a"] if pair["delta_auc"] > 0 else pair["b"]) if pair["marked"] else None
    return pairs


def all_set_metrics(
    scored: pd.DataFrame,
    names: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
    n_jobs: int = 1,
    say: Progress | None = None,
) -> list[dict]:
    """``set_metrics`` for every ``risk_<i>`` column of ``scored`` (threads; the same resamples for each)."""
    say = say or (lambda _message: None)

    def run(i: int):
        frame = scored[["client_id", LANDMARK, "label", f"risk_{i}"]].rename(columns={f"risk_{i}": "risk"})
        return i, set_metrics(frame, n_resamples=n_resamples, seed=seed)

    results: dict[int, dict] = {}
    runner = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")
    for done, (i, metrics) in enumerate(runner(delayed(run)(i) for i in range(len(names))), start=1):
        results[i] = metrics
        say(f"bootstrap CIs {done}/{len(names)}: {names[i]}")
    return [results[i] for i in range(len(names))]


# --- the job ----------------------------------------------------------------------------------


def compare(
    sessions_path: Path,
    episodes_path: Path,
    settings: CompareSettings,
    feature_sets: str | Sequence[str] | None = None,
    model: str | None = None,
    landmarks: str | Sequence[int] | None = None,
    folds: int | None = None,
    repeats: int | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Validate, fit every feature set on the same folds, compare them, log to MLflow; the report.

    ``feature_sets``: names (a list, or one comma-separated string); default the config's
    sets, else ``DEFAULT_FEATURE_SETS``. ``model``, ``folds``, ``repeats`` default to
    ``settings.compare``; ``landmarks`` (e.g. ``"1-6"``) to 1..``features.max_landmark``.
    Plots go to ``out_dir`` when given (and always to the MLflow parent run).
    Raises ``ContractError`` for invalid files, ``CompareError`` (bad names, one outcome
    class) and ``TooFewClientsError`` before anything reaches MLflow.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    config = settings.compare
    kind = model or config.model
    if kind not in MODELS:
        raise CompareError(f"--model must be one of {', '.join(MODELS)}")
    folds = folds or config.folds
    repeats = repeats or config.repeats
    if folds < 2 or repeats < 1:
        raise CompareError("--folds must be at least 2 and --repeats at least 1")
    names = split_set_names(feature_sets) or list(config.feature_sets) or list(DEFAULT_FEATURE_SETS)
    wanted_landmarks = parse_landmarks(landmarks)
    warnings: list[str] = []

    say("validating data")
    data = _load(sessions_path, episodes_path, settings, wanted_landmarks, warnings)
    sets, set_warnings = resolve_feature_sets(names, data.spec, config.feature_sets)
    warnings.extend(set_warnings)

    say("building fold features")
    fold_list = _make_folds(data, settings, folds, repeats)
    design_assignment = np.full((repeats, len(data.rows)), -1, dtype=np.int64)
    for fold in fold_list:
        design_assignment[fold.repeat, fold.valid] = fold.fold
    client_ids = data.rows["client_id"].astype(str).to_numpy()
    design_digest = fold_digest(client_ids, design_assignment)

    by_repeat, used = _out_of_fold_risks(sets, fold_list, kind, settings, len(data.rows), repeats, say)
    if config.calibrate:
        by_repeat = calibrate_out_of_fold(
            by_repeat, fold_list, data.rows["label"].to_numpy(), settings.training.calibration
        )
    risks = by_repeat.mean(axis=1)  # one risk per row: the average over repeats
    scored = data.rows.assign(**{f"risk_{i}": risks[i] for i in range(len(sets))})

    names = [s.name for s in sets]
    metrics = all_set_metrics(
        scored, names, n_resamples=config.bootstrap_resamples, seed=config.seed, n_jobs=config.n_jobs, say=say
    )
    per_set = {
        feature_set.name: {
            "groups": list(feature_set.groups),
            "features": list(feature_set.features),
            "columns": list(feature_set.columns),
            "n_features": len(feature_set.columns),
            "fold_digest": fold_digest(client_ids, used[i]),
            **metrics[i],
        }
        for i, feature_set in enumerate(sets)
    }
    fold_aucs = _fold_aucs(by_repeat, fold_list, data.rows["label"].to_numpy(dtype=float))
    pairs = compare_pairs(
        scored,
        names,
        fold_aucs,
        _test_train_ratio(fold_list, data.rows),
        n_resamples=config.pair_resamples,
        landmark_resamples=config.bootstrap_resamples,
        seed=config.seed,
        n_jobs=config.n_jobs,
        say=say,
    )

    labels = _client_labels(data.rows)
    report = {
        "kind": REPORT_KIND,
        "run_id": None,
        "model": kind,
        "design": {
            "folds": folds,
            "repeats": repeats,
            "seed": config.seed,
            "landmarks": list(data.landmarks),
            "fold_digest": design_digest,
            "fold_clients": [
                int(n)
                for n in pd.Series(design_assignment[0])
                .groupby(data.rows["client_id"].to_numpy())
                .first()
                .value_counts()
                .sort_index()
            ],
            "calibration": settings.training.calibration if config.calibrate else "none",
            "trajectories": "refitted on each outer fold's training clients",
            "hyperparameters": "models.estimators defaults, the same for every set (no tuning)",
            "bootstrap_resamples": config.bootstrap_resamples,
            "pair_resamples": config.pair_resamples,
            "confidence": CONFIDENCE,
            "multiple_comparisons": "holm",
            "alpha": ALPHA,
        },
        "data": {
            "clients": int(len(data.episodes)),
            "ongoing_excluded": data.n_ongoing,
            "sessions": int(len(data.sessions)),
            "clients_evaluated": int(len(labels)),
            "rows": int(len(data.rows)),
            "dropout_rate": float(labels.mean()),
            "instruments": [i.key for i in data.spec.instruments],
            "covariates": [*data.spec.numeric_covariates, *data.spec.categorical_covariates],
        },
        "feature_sets": per_set,
        "pairs": pairs,
        "warnings": warnings,
    }

    say("drawing plots")
    with tempfile.TemporaryDirectory() as tmp:
        plots = Path(out_dir) if out_dir is not None else Path(tmp) / "plots"
        files = write_plots(report, scored, names, plots)
        say("logging to MLflow")
        _log_to_mlflow(report, files, sessions_path, episodes_path, settings)
    report["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    return json_safe(report)


# --- plots, markdown, MLflow -------------------------------------------------------------------


def slugs(names: Sequence[str]) -> dict[str, str]:
    """File- and metric-safe names ("outcome+alliance" -> "outcome_alliance"), unique."""
    out: dict[str, str] = {}
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "set"
        candidate, n = slug, 2
        while candidate in out.values():
            candidate, n = f"{slug}_{n}", n + 1
        out[name] = candidate
    return out


def write_plots(report: dict, scored: pd.DataFrame, names: Sequence[str], directory: Path) -> dict[str, Path]:
    """roc.png (every set), roc_<set>.png (one per set), auc_by_landmark.png (every set, with CIs)."""
    directory.mkdir(parents=True, exist_ok=True)
    y = scored["label"].to_numpy(dtype=float)
    curves = {name: (y, scored[f"risk_{i}"].to_numpy()) for i, name in enumerate(names)}
    files = {"roc": plot_roc(curves, directory / "roc.png")}
    for name, slug in slugs(names).items():
        files[f"roc:{name}"] = plot_roc({name: curves[name]}, directory / f"roc_{slug}.png")
    by_landmark = {name: report["feature_sets"][name]["by_landmark"] for name in names}
    cis = {name: {k: {"roc_auc": v["roc_auc_ci"]} for k, v in per.items()} for name, per in by_landmark.items()}
    files["auc_by_landmark"] = plot_by_landmark(by_landmark, "roc_auc", directory / "auc_by_landmark.png", cis=cis)
    return files


def _flat_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    flat = {}
    for metric in POINT_METRICS:
        flat[f"{prefix}{metric}"] = metrics.get(metric)
        if metric in CI_METRICS:
            lo, hi = metrics.get(f"{metric}_ci") or (None, None)
            flat[f"{prefix}{metric}_ci_lo"], flat[f"{prefix}{metric}_ci_hi"] = lo, hi
    for landmark, values in metrics.get("by_landmark", {}).items():
        for metric in ("roc_auc", "pr_auc", "brier", "calibration_slope"):
            flat[f"{prefix}l{landmark}_{metric}"] = values.get(metric)
    return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _truncate(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_to_mlflow(
    report: dict, files: dict[str, Path], sessions_path: Path, episodes_path: Path, settings: CompareSettings
) -> None:
    """One parent run (table, report, figures) with one nested run per feature set."""
    names = list(report["feature_sets"])
    slug = slugs(names)
    use_experiment(settings.compare.experiment, settings.training.artifact_location)
    with mlflow.start_run(run_name="compare feature sets") as parent:
        report["run_id"] = parent.info.run_id
        digests = log_dataset(sessions_path, episodes_path)
        report["data"]["sessions_digest"], report["data"]["episodes_digest"] = digests["sessions"], digests["episodes"]
        design = report["design"]
        mlflow.set_tags({"kind": REPORT_KIND, "model_kind": report["model"]})
        mlflow.log_params(
            {
                "model_kind": report["model"],
                "feature_sets": _truncate(",".join(names)),
                "folds": design["folds"],
                "repeats": design["repeats"],
                "seed": design["seed"],
                "landmarks": _truncate(",".join(map(str, design["landmarks"]))),
                "fold_digest": design["fold_digest"],
                "calibration": design["calibration"],
                "bootstrap_resamples": design["bootstrap_resamples"],
                "pair_resamples": design["pair_resamples"],
                "max_landmark": max(design["landmarks"]),
            }
        )
        for name in names:
            metrics = report["feature_sets"][name]
            with mlflow.start_run(run_name=name, nested=True) as child:
                metrics["run_id"] = child.info.run_id
                mlflow.set_tags({"kind": REPORT_KIND, "feature_set": name, "model_kind": report["model"]})
                mlflow.log_params(
                    {
                        "feature_set": _truncate(name),
                        "model_kind": report["model"],
                        "groups": _truncate(",".join(metrics["groups"]) or "-"),
                        "n_features": metrics["n_features"],
                        "fold_digest": metrics["fold_digest"],
                        "folds": design["folds"],
                        "repeats": design["repeats"],
                        "seed": design["seed"],
                    }
                )
                mlflow.log_metrics(_flat_metrics("", metrics))
                mlflow.log_dict(json_safe({"name": name, **metrics}), "feature_set.json")
                mlflow.log_artifact(str(files[f"roc:{name}"]), "plots")
        flat = {}
        for name in names:
            flat.update(_flat_metrics(f"{slug[name]}.", report["feature_sets"][name]))
        for pair in report["pairs"]:
            key = f"delta_auc.{slug[pair['a']]}.vs.{slug[pair['b']]}"
            lo, hi = pair["ci"]
            flat.update(
                {
                    key: pair["delta_auc"],
                    f"{key}.ci_lo": lo,
                    f"{key}.ci_hi": hi,
                    f"{key}.p_value": pair["p_value"],
                    f"{key}.p_value_holm": pair["p_value_holm"],
                }
            )
        mlflow.log_metrics({k: float(v) for k, v in flat.items() if v is not None and math.isfinite(v)})
        mlflow.log_text(render_tables(report), "comparison.md")
        mlflow.log_text(pooled_table(report).to_csv(index=False), "comparison.csv")
        mlflow.log_text(render_markdown(report), "report.md")
        mlflow.log_dict(json_safe(report), "report.json")
        for key, path in files.items():
            if ":" not in key:
                mlflow.log_artifact(str(path), "plots")
            else:
                mlflow.log_artifact(str(path), "plots/per_set")


def json_safe(value):
    """The report with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _with_ci(value, ci, digits: int = 3) -> str:
    lo, hi = ci if ci else (None, None)
    return f"{_num(value, digits)} ({_num(lo, digits)} to {_num(hi, digits)})"


def _p(value) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def pooled_table(report: dict) -> pd.DataFrame:
    """One row per set: pooled metrics with their CIs (the comparison table, also as CSV)."""
    rows = []
    for name, m in report["feature_sets"].items():
        row = {"feature_set": name, "n_features": m["n_features"]}
        for metric in ("roc_auc", "pr_auc", "brier", "calibration_slope"):
            lo, hi = m[f"{metric}_ci"]
            row.update({metric: m[metric], f"{metric}_ci_lo": lo, f"{metric}_ci_hi": hi})
        row["informative_from"] = m.get("informative_from")
        rows.append(row)
    return pd.DataFrame(rows)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(report: dict) -> str:
    """The per-set, by-landmark and pairwise tables in markdown."""
    sets = report["feature_sets"]
    pooled = _md_table(
        [
            "feature set",
            "features",
            "ROC AUC (95% CI)",
            "PR AUC (95% CI)",
            "Brier (95% CI)",
            "calibration slope (95% CI)",
            "AUC > 0.5 from session",
        ],
        [
            [
                name,
                m["n_features"],
                _with_ci(m["roc_auc"], m["roc_auc_ci"]),
                _with_ci(m["pr_auc"], m["pr_auc_ci"]),
                _with_ci(m["brier"], m["brier_ci"]),
                _with_ci(m["calibration_slope"], m["calibration_slope_ci"], 2),
                m.get("informative_from") or "never",
            ]
            for name, m in sets.items()
        ],
    )
    landmarks = sorted({k for m in sets.values() for k in m["by_landmark"]}, key=int)
    by_landmark = _md_table(
        ["feature set", *(f"session {k}" for k in landmarks)],
        [
            [
                name,
                *(
                    _with_ci(m["by_landmark"][k]["roc_auc"], m["by_landmark"][k]["roc_auc_ci"])
                    if k in m["by_landmark"]
                    else ""
                    for k in landmarks
                ),
            ]
            for name, m in sets.items()
        ],
    )
    pairs = _md_table(
        ["a", "b", "AUC(a) - AUC(b) (95% CI)", "p", "p (Holm)", "marked"],
        [
            [
                p["a"],
                p["b"],
                _with_ci(p["delta_auc"], p["ci"]),
                _p(p["p_value"]),
                _p(p["p_value_holm"]),
                f"**yes: {p['better']} better**" if p["marked"] else "no",
            ]
            for p in report["pairs"]
        ],
    )
    parts = [
        "## Pooled over landmark sessions",
        pooled,
        "## ROC AUC by landmark session",
        by_landmark,
        "## Pairs of feature sets",
        pairs if report["pairs"] else "(one feature set: no pairs)",
    ]
    return "\n\n".join(parts) + "\n"


def render_markdown(report: dict) -> str:
    """The human-readable report: design, data, tables, and how to read them."""
    d, data = report["design"], report["data"]
    landmarks = d["landmarks"]
    span = (
        f"{landmarks[0]}-{landmarks[-1]}"
        if landmarks == list(range(landmarks[0], landmarks[-1] + 1))
        else ", ".join(map(str, landmarks))
    )
    calibration = (
        f"{d['calibration']} calibrator for each held-out fold, fitted on the out-of-fold "
        "predictions of that fold's training clients (never on the fold's own labels)"
        if d["calibration"] != "none"
        else "none: the model's own probabilities (uncalibrated)"
    )
    lines = [
        "# Which scores predict dropout? A feature-set comparison",
        "",
        f"Model: **{report['model']}**. {data['clients_evaluated']:,} clients ({data['rows']:,} landmark rows, "
        f"sessions {span}), dropout rate {data['dropout_rate']:.1%}; {data['ongoing_excluded']:,} ongoing "
        "episodes left out (their outcome is unknown). Instruments: "
        f"{', '.join(data['instruments']) or 'none'}; covariates: {', '.join(data['covariates']) or 'none'}.",
        "",
        "## Design",
        "",
        f"- Out-of-fold predictions from {d['folds']} client-grouped, outcome-stratified folds"
        + (f", repeated {d['repeats']} times (each row's risk averaged over the repeats)" if d["repeats"] > 1 else "")
        + f"; every feature set used exactly the same folds (fold digest `{d['fold_digest']}`) and model seed.",
        f"- Expected-trajectory curves {d['trajectories']}; hyperparameters: {d['hyperparameters']}.",
        f"- Calibration: {calibration}.",
        f"- 95% CIs: client-clustered bootstrap ({d['bootstrap_resamples']} resamples, the same clients for every "
        f"set). Pairs: paired client bootstrap of the AUC difference ({d['pair_resamples']} resamples), two-sided "
        "p-value.",
        f"- A pair is **marked** when its 95% CI excludes 0 and its Holm-adjusted p-value (over all "
        f"{len(report['pairs'])} pairs) is below {d['alpha']:.2f}; the raw p-value is shown beside it. "
        'Per-landmark differences and the "AUC > 0.5 from session" column (first session from which the '
        "lower CI bound stays above 0.5) are descriptive, not adjusted for multiplicity.",
        "- The landmark session number is an input of every set. CIs are conditional on the fitted models: "
        "they resample clients, not refits.",
        "",
        render_tables(report).rstrip(),
    ]
    if any(p["by_landmark"] for p in report["pairs"]):
        landmarks_seen = sorted({k for p in report["pairs"] for k in p["by_landmark"]}, key=int)
        rows = [
            [
                f"{p['a']} - {p['b']}",
                *(
                    _with_ci(p["by_landmark"][k]["delta_auc"], p["by_landmark"][k]["ci"])
                    if k in p["by_landmark"]
                    else ""
                    for k in landmarks_seen
                ),
            ]
            for p in report["pairs"]
        ]
        lines += [
            "",
            "## AUC differences by landmark session (descriptive)",
            "",
            _md_table(["pair", *(f"session {k}" for k in landmarks_seen)], rows),
        ]
    if report.get("warnings"):
        lines += ["", "## Warnings", "", *(f"- {w}" for w in report["warnings"])]
    lines += [
        "",
        "Figures: `roc.png` (every set), `roc_<set>.png` (one per set), `auc_by_landmark.png` "
        "(AUC by landmark session with 95% CIs, every set on one plot).",
    ]
    return "\n".join(lines) + "\n"


def write_reports(report: dict, path: Path) -> tuple[Path, Path]:
    """The JSON report at ``path`` and the markdown beside it (same name, ``.md``)."""
    path = Path(path)
    json_path = path.with_suffix(".json") if path.suffix.lower() == ".md" else path
    md_path = json_path.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(json_safe(report), indent=2))
    md_path.write_text(render_markdown(report))
    return json_path, md_path
