"""Feature-set comparison: which scores predict dropout, and from which session on.

``compare`` evaluates several feature sets (named groups joined by ``+``, or sets
defined in the config) with one model recipe on the SAME out-of-fold design and
reports, per set, the within-session AUC (the mean of the per-landmark ROC AUCs over
the landmarks where both outcomes have ``evaluation.min_class_clients`` clients, with a
client-bootstrap CI; the others are named with their reason), the pooled ROC AUC
(which includes the session-number effect: later landmarks hold fewer eventual
dropouts, so the session number alone scores well), PR AUC, Brier score and
calibration with client-bootstrap 95% CIs (pooled and per landmark), and for every
pair of sets the within-session and pooled AUC differences on the same clients.

Defaults: without named sets, ``landmark`` (the session number alone) and the groups of
``DEFAULT_FEATURE_SETS`` the data have features for (a skipped group is a warning);
without a model, logistic below ``evaluation.small_data_clients`` ended episodes (the
report gives the reason), else LightGBM.

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
  fold's predictions are recalibrated (``training.calibration``, Platt by default, one
  pooled intercept: see ``calibrate_out_of_fold`` for why not train's per landmark) by a
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
  t-test on the per-fold AUC differences, which counts the refitting variability
  (df = folds x repeats - 1, so conservative with few folds; ``repeats`` > 1 sharpens
  it and, by averaging each row's risk over refits, also steadies the point estimates).
* **What marks a pair.** The mark rests on the within-session AUC difference, the one a
  clinician comparing clients at the same session cares about (the pooled difference
  is reported beside it). Every pair reports its raw ``p_value`` and a Holm-adjusted
  ``p_value_holm`` over all pairs. A pair is ``marked`` only when all three agree: the
  paired bootstrap 95% CI excludes 0, the Holm-adjusted p is below 0.05, AND the
  refit-aware ``cv_test`` (on the per-fold within-session differences) has a 95% CI
  excluding 0 on the same side. The bootstrap alone holds the fitted models fixed, so
  it can mark a difference that another training sample would not reproduce;
  requiring ``cv_test`` too keeps a mark to differences of the recipe, and Holm keeps
  adding sets from inflating the chance of a spurious one. Per-landmark differences
  are descriptive (unadjusted). One caveat no test removes: on a few thousand
  clients, uninformative features cost a set some AUC (overfitting), a real and
  reproducible difference of the *recipe*. Compare sets of similar size, or read a
  small marked difference with more clients or repeats.
* Hyperparameters are the fixed defaults of ``models.estimators`` (no tuning): tuning
  per set would make the comparison partly about the tuner.

The parts are in ``training.comparison``: ``feature_sets`` (names and landmarks),
``folds`` (data and the shared folds), ``fitting`` (out-of-fold risks),
``statistics``, ``result`` (the typed result and its JSON keys), ``tracking``
(MLflow), ``plots`` and ``report`` (markdown, CSV, the report files).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dropout_risk.training.compare_settings import CompareConfig, CompareSettings
from dropout_risk.training.comparison.errors import CompareError
from dropout_risk.training.comparison.feature_sets import (
    FeatureSet,
    default_feature_sets,
    parse_landmarks,
    resolve_feature_sets,
    split_set_names,
)
from dropout_risk.training.comparison.fitting import MODELS, calibrate_out_of_fold, out_of_fold_risks
from dropout_risk.training.comparison.folds import (
    ComparisonData,
    Fold,
    client_labels,
    design_assignment,
    fold_clients,
    fold_digest,
    load_data,
    make_folds,
)
from dropout_risk.training.comparison.plots import write_plots
from dropout_risk.training.comparison.result import CompareResult, DataSummary, Design, FeatureSetResult, PairResult
from dropout_risk.training.comparison.statistics import (
    all_set_metrics,
    compare_pairs,
    held_out_ratio,
    out_of_fold_frame,
    per_fold_aucs,
    per_fold_within_aucs,
)
from dropout_risk.training.comparison.tracking import log_comparison
from dropout_risk.training.evaluation.within_landmark import evaluable_landmarks

Progress = Callable[[str], None]


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
) -> CompareResult:
    """Validate, fit every feature set on the same folds, compare them, log to MLflow; the result.

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
    asked, folds, repeats = _options(config, model, folds, repeats)
    names = split_set_names(feature_sets) or list(config.feature_sets)
    wanted_landmarks = parse_landmarks(landmarks)
    warnings: list[str] = []
    say("validating data")
    data = load_data(sessions_path, episodes_path, settings, wanted_landmarks, warnings)
    if not names:
        names, skipped = default_feature_sets(data.spec)
        warnings.extend(skipped)
    sets, set_warnings = resolve_feature_sets(names, data.spec, config.feature_sets)
    warnings.extend(set_warnings)
    kind, model_reason = _model_kind(asked, model is not None, len(data.episodes), settings)
    min_class = settings.evaluation.min_class_clients

    say("building fold features")
    fold_list = make_folds(data, settings, folds, repeats)
    design = _design(data, fold_list, settings, folds, repeats)
    by_repeat, used = out_of_fold_risks(sets, fold_list, kind, settings, len(data.rows), repeats, say)
    if config.calibrate:
        labels = data.rows["label"].to_numpy()
        by_repeat = calibrate_out_of_fold(by_repeat, fold_list, labels, settings.training.calibration)
    risks = by_repeat.mean(axis=1)  # one risk per row: the average over repeats
    scored = data.rows.assign(**{f"risk_{i}": risks[i] for i in range(len(sets))})
    oof = out_of_fold_frame(by_repeat, fold_list, data.rows)  # the within-session figures compare within folds
    result = CompareResult(
        model=kind,
        design=design,
        data=_data_summary(data),
        feature_sets=_set_results(sets, scored, oof, used, data, config, min_class, say),
        pairs=_pairs(sets, scored, oof, by_repeat, fold_list, data, config, min_class, say),
        warnings=warnings,
        model_reason=model_reason,
    )

    result = _plot_and_log(result, scored, out_dir, (sessions_path, episodes_path), settings, say)
    return replace(result, elapsed_seconds=round(time.perf_counter() - started, 1))


def _plot_and_log(
    result: CompareResult,
    scored: pd.DataFrame,
    out_dir: Path | None,
    files_in: tuple[Path, Path],
    settings: CompareSettings,
    say: Progress,
) -> CompareResult:
    """Plots to ``out_dir`` (else a temporary folder) and everything to the MLflow parent run."""
    say("drawing plots")
    with tempfile.TemporaryDirectory() as tmp:
        plots = Path(out_dir) if out_dir is not None else Path(tmp) / "plots"
        files = write_plots(result, scored, plots)
        say("logging to MLflow")
        return log_comparison(result, files, *files_in, settings)


def _options(
    config: CompareConfig, model: str | None, folds: int | None, repeats: int | None
) -> tuple[str | None, int, int]:
    """The model kind (None: chosen by data size), folds and repeats asked for (else the config's), checked."""
    kind = model or config.model
    if kind is not None and kind not in MODELS:
        raise CompareError(f"--model must be one of {', '.join(MODELS)}")
    folds = folds or config.folds
    repeats = repeats or config.repeats
    if folds < 2 or repeats < 1:
        raise CompareError("--folds must be at least 2 and --repeats at least 1")
    return kind, folds, repeats


def _model_kind(asked: str | None, from_argument: bool, ended: int, settings: CompareSettings) -> tuple[str, str]:
    """The model and why: asked for, configured, or logistic below ``evaluation.small_data_clients``."""
    if asked is not None:
        return asked, "asked for with --model" if from_argument else "compare.model in the config"
    threshold = settings.evaluation.small_data_clients
    if ended < threshold:
        return "logistic", (
            f"{ended:,} ended episodes, below evaluation.small_data_clients ({threshold:,}): "
            "the logistic model (--model lightgbm overrides)"
        )
    return "lightgbm", f"{ended:,} ended episodes, at least evaluation.small_data_clients ({threshold:,})"


def _client_ids(data: ComparisonData) -> np.ndarray:
    return data.rows["client_id"].astype(str).to_numpy()


def _design(data: ComparisonData, fold_list: list[Fold], settings: CompareSettings, folds: int, repeats: int) -> Design:
    config = settings.compare
    assignment = design_assignment(fold_list, repeats, len(data.rows))
    return Design(
        folds=folds,
        repeats=repeats,
        seed=config.seed,
        landmarks=tuple(data.landmarks),
        fold_digest=fold_digest(_client_ids(data), assignment),
        fold_clients=fold_clients(assignment, data.rows),
        calibration=settings.training.calibration if config.calibrate else "none",
        bootstrap_resamples=config.bootstrap_resamples,
        pair_resamples=config.pair_resamples,
        min_class_clients=settings.evaluation.min_class_clients,
    )


def _data_summary(data: ComparisonData) -> DataSummary:
    labels = client_labels(data.rows)
    return DataSummary(
        clients=int(len(data.episodes)),
        ongoing_excluded=data.n_ongoing,
        sessions=int(len(data.sessions)),
        clients_evaluated=int(len(labels)),
        rows=int(len(data.rows)),
        dropout_rate=float(labels.mean()),
        instruments=[i.key for i in data.spec.instruments],
        covariates=[*data.spec.numeric_covariates, *data.spec.categorical_covariates],
    )


def _set_results(
    sets: list[FeatureSet],
    scored: pd.DataFrame,
    oof: pd.DataFrame,
    used: np.ndarray,
    data: ComparisonData,
    config: CompareConfig,
    min_class_clients: int,
    say: Progress,
) -> dict[str, FeatureSetResult]:
    """Every set's metrics, and the fold assignment it was actually fitted on (``used``: sets x repeats x rows)."""
    names = [s.name for s in sets]
    metrics = all_set_metrics(
        scored,
        oof,
        names,
        n_resamples=config.bootstrap_resamples,
        seed=config.seed,
        min_class_clients=min_class_clients,
        n_jobs=config.n_jobs,
        say=say,
    )
    client_ids = _client_ids(data)
    return {
        s.name: FeatureSetResult(
            name=s.name,
            groups=s.groups,
            features=s.features,
            columns=s.columns,
            fold_digest=fold_digest(client_ids, used[i]),
            metrics=metrics[i],
        )
        for i, s in enumerate(sets)
    }


def _pairs(
    sets: list[FeatureSet],
    scored: pd.DataFrame,
    oof: pd.DataFrame,
    by_repeat: np.ndarray,
    fold_list: list[Fold],
    data: ComparisonData,
    config: CompareConfig,
    min_class_clients: int,
    say: Progress,
) -> list[PairResult]:
    evaluable, _ = evaluable_landmarks(data.rows, min_class_clients)
    return compare_pairs(
        scored,
        oof,
        [s.name for s in sets],
        per_fold_aucs(by_repeat, fold_list, data.rows["label"].to_numpy(dtype=float)),
        per_fold_within_aucs(by_repeat, fold_list, data.rows, evaluable),
        held_out_ratio(fold_list, data.rows),
        n_resamples=config.pair_resamples,
        landmark_resamples=config.bootstrap_resamples,
        seed=config.seed,
        min_class_clients=min_class_clients,
        n_jobs=config.n_jobs,
        say=say,
    )
