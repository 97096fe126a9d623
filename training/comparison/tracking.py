"""The comparison in MLflow: one parent run (tables, report, figures) and one nested run per feature set.

Metric and parameter names are a contract (dashboards and the tests read them).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import mlflow

from dropout_risk.training.compare_settings import CompareSettings
from dropout_risk.training.comparison.plots import slugs
from dropout_risk.training.comparison.report import pooled_table, render_markdown, render_tables
from dropout_risk.training.comparison.result import (
    REPORT_KIND,
    CompareResult,
    FeatureSetResult,
    Interval,
    Metrics,
    SetMetrics,
    json_safe,
)
from dropout_risk.training.tracking import log_dataset, use_experiment


def log_comparison(
    result: CompareResult, files: dict[str, Path], sessions_path: Path, episodes_path: Path, settings: CompareSettings
) -> CompareResult:
    """Log ``result`` and its figures (``files`` from ``write_plots``); the result with its run ids and digests."""
    use_experiment(settings.compare.experiment, settings.training.artifact_location)
    with mlflow.start_run(run_name="compare feature sets") as parent:
        digests = log_dataset(sessions_path, episodes_path)
        data = replace(result.data, sessions_digest=digests["sessions"], episodes_digest=digests["episodes"])
        result = replace(result, run_id=parent.info.run_id, data=data)
        mlflow.set_tags({"kind": REPORT_KIND, "model_kind": result.model})
        mlflow.log_params(_parent_params(result))
        sets = {name: _log_set_run(result, s, files[f"roc:{name}"]) for name, s in result.feature_sets.items()}
        result = replace(result, feature_sets=sets)
        mlflow.log_metrics(_parent_metrics(result))
        mlflow.log_text(render_tables(result), "comparison.md")
        mlflow.log_text(pooled_table(result).to_csv(index=False), "comparison.csv")
        mlflow.log_text(render_markdown(result), "report.md")
        mlflow.log_dict(result.to_json(), "report.json")
        for key, path in files.items():
            mlflow.log_artifact(str(path), "plots" if ":" not in key else "plots/per_set")
    return result


def _truncate(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parent_params(result: CompareResult) -> dict[str, object]:
    design = result.design
    return {
        "model_kind": result.model,
        "feature_sets": _truncate(",".join(result.feature_sets)),
        "folds": design.folds,
        "repeats": design.repeats,
        "seed": design.seed,
        "landmarks": _truncate(",".join(map(str, design.landmarks))),
        "fold_digest": design.fold_digest,
        "calibration": design.calibration,
        "bootstrap_resamples": design.bootstrap_resamples,
        "pair_resamples": design.pair_resamples,
        "max_landmark": max(design.landmarks),
        "min_class_clients": design.min_class_clients,
    }


def _log_set_run(result: CompareResult, feature_set: FeatureSetResult, roc_plot: Path) -> FeatureSetResult:
    """One nested run: the set's parameters, metrics, JSON and ROC curve; the set with its run id."""
    design, name = result.design, feature_set.name
    with mlflow.start_run(run_name=name, nested=True) as child:
        feature_set = replace(feature_set, run_id=child.info.run_id)
        mlflow.set_tags({"kind": REPORT_KIND, "feature_set": name, "model_kind": result.model})
        mlflow.log_params(
            {
                "feature_set": _truncate(name),
                "model_kind": result.model,
                "groups": _truncate(",".join(feature_set.groups) or "-"),
                "n_features": feature_set.n_features,
                "fold_digest": feature_set.fold_digest,
                "folds": design.folds,
                "repeats": design.repeats,
                "seed": design.seed,
            }
        )
        mlflow.log_metrics(_flat_metrics("", feature_set.metrics))
        mlflow.log_dict(json_safe({"name": name, **feature_set.to_json()}), "feature_set.json")
        mlflow.log_artifact(str(roc_plot), "plots")
    return feature_set


def _pooled(m: Metrics) -> list[tuple[str, float, Interval | None]]:
    return [
        ("roc_auc", m.roc_auc, m.roc_auc_ci),
        ("pr_auc", m.pr_auc, m.pr_auc_ci),
        ("brier", m.brier, m.brier_ci),
        ("calibration_slope", m.calibration_slope, m.calibration_slope_ci),
        ("calibration_intercept", m.calibration_intercept, None),
        ("ece", m.ece, m.ece_ci),
    ]


def _flat_metrics(prefix: str, metrics: SetMetrics) -> dict[str, float]:
    """MLflow metrics of one set: pooled (with CI bounds), then ``l<k>_<metric>`` per landmark."""
    within = metrics.within_landmark
    flat: dict[str, float | None] = {
        f"{prefix}within_landmark_auc": within.auc,
        f"{prefix}within_landmark_auc_ci_lo": within.ci[0],
        f"{prefix}within_landmark_auc_ci_hi": within.ci[1],
    }
    for metric, value, ci in _pooled(metrics.pooled):
        flat[f"{prefix}{metric}"] = value
        if ci is not None:
            flat[f"{prefix}{metric}_ci_lo"], flat[f"{prefix}{metric}_ci_hi"] = ci
    for landmark, m in metrics.by_landmark.items():
        for metric, value in (
            ("roc_auc", m.roc_auc),
            ("pr_auc", m.pr_auc),
            ("brier", m.brier),
            ("calibration_slope", m.calibration_slope),
        ):
            flat[f"{prefix}l{landmark}_{metric}"] = value
    return _finite(flat)


def _parent_metrics(result: CompareResult) -> dict[str, float]:
    """Every set's metrics prefixed with its slug, then ``delta_auc.<a>.vs.<b>`` per pair."""
    slug = slugs(list(result.feature_sets))
    flat: dict[str, float | None] = {}
    for name, feature_set in result.feature_sets.items():
        flat.update(_flat_metrics(f"{slug[name]}.", feature_set.metrics))
    for pair in result.pairs:
        key = f"delta_auc.{slug[pair.a]}.vs.{slug[pair.b]}"
        lo, hi = pair.ci
        flat.update(
            {
                key: pair.delta_auc,
                f"{key}.ci_lo": lo,
                f"{key}.ci_hi": hi,
                f"{key}.p_value": pair.p_value,
                f"{key}.p_value_holm": pair.p_value_holm,
            }
        )
        within, key = pair.within_landmark, f"delta_within_landmark_auc.{slug[pair.a]}.vs.{slug[pair.b]}"
        flat.update(
            {
                key: within.delta_auc,
                f"{key}.ci_lo": within.ci[0],
                f"{key}.ci_hi": within.ci[1],
                f"{key}.p_value_holm": within.p_value_holm,
                f"{key}.cv_p_value": within.cv_test.p_value,
                f"{key}.marked": float(pair.marked),
            }
        )
    return _finite(flat)


def _finite(flat: dict[str, float | None]) -> dict[str, float]:
    return {k: float(v) for k, v in flat.items() if v is not None and math.isfinite(v)}
