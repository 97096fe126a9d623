"""One MLflow run per training: data digests, parameters, figures, plots, test data, the registered model."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from dropout_risk.features.private_files import private_tree
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.models.profile import ReferenceProfile, fit_profile
from dropout_risk.models.registry import CHALLENGER, log_model, set_alias
from dropout_risk.training.evaluation.model_card import render_model_card
from dropout_risk.training.evaluation.plots import plot_by_landmark, plot_calibration, plot_decision_curve, plot_roc
from dropout_risk.training.jobs.fitted import Fitted
from dropout_risk.training.jobs.prepare import PreparedData, data_summary
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.splits import SplitKind
from dropout_risk.training.tracking import log_dataset, log_report_metrics, use_experiment

TEST_DATA_DIR = "evaluation"
OOF_FILE = "oof.parquet"  # small-data mode: out-of-fold risks, in TEST_DATA_DIR


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_version: str


def log_and_register(
    fitted: Fitted,
    scored: pd.DataFrame,
    report: dict[str, Any],
    prep: PreparedData,
    settings: TrainingSettings,
    split: SplitKind,
    paths: tuple[Path, Path],
    oof: pd.DataFrame | None,
) -> LoggedRun:
    """One MLflow run: data digests, parameters, figures, test data, the model (registered as challenger)."""
    config, spec, chosen = settings.training, fitted.spec, fitted.selection.chosen
    use_experiment(config.experiment, config.artifact_location)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        report["data"] = {**data_summary(prep, log_dataset(*paths)), "instruments": [i.key for i in spec.instruments]}
        mlflow.log_params(
            {
                "model_kind": chosen.kind,
                "split": split,
                "max_landmark": spec.max_landmark,
                **{f"training.{k}": v for k, v in config.model_dump().items()},
                **{f"param.{k}": v for k, v in chosen.params.items()},
            }
        )
        log_artifacts(Path(tmp), scored, report, spec, prep, oof)
        info = log_model(
            fitted.model,
            check_rows=fitted.train_rows,
            input_example=synthetic_example(fitted),
            profile=reference_profile(fitted, prep),
        )
        version = str(info.registered_model_version)
        set_alias(CHALLENGER, version)
        report["model_version"] = version
        report["run_id"] = run.info.run_id
        log_report_metrics(report)
        mlflow.log_dict(report, "report.json")
        mlflow.log_text(render_model_card(report, spec), "model_card.md")
        mlflow.set_tags({"model_version": version, "model_kind": chosen.kind})
    return LoggedRun(run_id=run.info.run_id, model_version=version)


def reference_profile(fitted: Fitted, prep: PreparedData) -> ReferenceProfile:
    """The training clients' reference profile (aggregates only), stored with the model for monitoring."""
    sessions = prep.sessions[prep.sessions["client_id"].isin(prep.train_ids)]
    return fit_profile(sessions, fitted.spec, fitted.model.predict_features(fitted.train_rows))


def synthetic_example(fitted: Fitted) -> pd.DataFrame:
    """One feature row of typical values, stored with the model as MLflow's input example.

    Numbers are the training rows' medians (rounded), categories their first level: the
    packaged model travels to wherever the registry is copied, and a real client's row
    there would be health data outside the clinic.
    """
    rows = fitted.train_rows.reindex(columns=fitted.spec.feature_columns())
    typical: dict[str, object] = {}
    for column in rows.columns:
        levels = fitted.spec.categorical_covariates.get(column)
        if levels is not None:
            typical[column] = levels[0] if levels else None
        else:
            median = pd.to_numeric(rows[column], errors="coerce").median()
            typical[column] = None if pd.isna(median) else round(float(median), 1)
    return fitted.model.example_input(pd.DataFrame([typical]))


def log_artifacts(
    tmp: Path,
    scored: pd.DataFrame,
    report: dict[str, Any],
    spec: FeatureSpec,
    prep: PreparedData,
    oof: pd.DataFrame | None,
) -> None:
    plots = tmp / "plots"
    plots.mkdir()
    registered = f"registered ({report['model_kind']})"
    curves = {registered: (scored["label"], scored["risk"])}
    curves |= {name: (scored["label"], scored[name]) for name in ("logistic", "clinical_rule") if name in scored}
    if "true_risk" in scored:
        curves["true risk"] = (scored["label"], scored["true_risk"])
    plot_roc(curves, plots / "roc.png")
    plot_calibration(scored["label"], scored["risk"], plots / "calibration.png")
    plot_decision_curve(curves, plots / "decision_curve.png")
    by_landmark = {
        registered: report["test"]["by_landmark"],
        **{name: metrics["by_landmark"] for name, metrics in report["baselines"].items() if "by_landmark" in metrics},
    }
    cis = {name: {k: v.get("ci", {}) for k, v in metrics.items()} for name, metrics in by_landmark.items()}
    if "true_risk" in report:
        by_landmark["true risk"] = report["true_risk"]["by_landmark"]
    plot_by_landmark(by_landmark, "roc_auc", plots / "auc_by_landmark.png", cis=cis)
    mlflow.log_artifacts(str(plots), "plots")
    # The promotion gate re-scores these clients with the champion: "on the same test clients".
    evaluation = tmp / TEST_DATA_DIR
    evaluation.mkdir()
    # Small-data mode: the gate judges the out-of-fold risks, and scores the champion on every client.
    ids = prep.test_ids if prep.mode == "holdout" else prep.train_ids
    test = prep.sessions["client_id"].isin(ids)
    prep.sessions[test].to_parquet(evaluation / "test_sessions.parquet", index=False)
    prep.episodes[prep.episodes["client_id"].isin(ids)].to_parquet(evaluation / "test_episodes.parquet", index=False)
    if oof is not None:
        oof.to_parquet(evaluation / OOF_FILE, index=False)
    (evaluation / "feature_spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
    private_tree(evaluation)  # test clients' sessions: 0600 while they wait here for MLflow to copy them
    mlflow.log_artifacts(str(evaluation), TEST_DATA_DIR)
