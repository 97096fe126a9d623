"""The promotion gate: a challenger becomes champion only if it is no worse, and calibrated (``gate_rules``).

Both models are scored afresh on the challenger's held-out test clients (stored
with its training run), each with its own feature spec and trajectories, so the
comparison is on the same clients whatever the two models were trained on.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from dropout_risk.models.artifact import ArtifactError
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.registry import CHALLENGER, CHAMPION, MODEL_NAME, load_scorer, set_alias, version_for_alias
from dropout_risk.training.cv_estimate import mean_over_repeats
from dropout_risk.training.evaluation.monotonicity import monotonicity_violations
from dropout_risk.training.evaluation.stratified_within import stratified_within_landmark_auc
from dropout_risk.training.gate_rules import judge, model_figures, paired_figures
from dropout_risk.training.jobs.run_logging import OOF_FILE, TEST_DATA_DIR
from dropout_risk.training.settings import TrainingSettings
from dropout_risk.training.tracking import use_experiment


class PromotionError(ValueError):
    pass


@dataclass
class Decision:
    promoted: bool
    challenger_version: str
    champion_version: str | None
    reasons: list[str] = field(default_factory=list)
    challenger: dict = field(default_factory=dict)
    champion: dict = field(default_factory=dict)
    forced: bool = False


def stored_test_data(client: MlflowClient, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The run's test clients' sessions and episodes, and (small-data mode) its out-of-fold risks."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, TEST_DATA_DIR, tmp))
        oof = pd.read_parquet(local / OOF_FILE) if (local / OOF_FILE).is_file() else None
        return (pd.read_parquet(local / "test_sessions.parquet"), pd.read_parquet(local / "test_episodes.parquet"), oof)


def _scored(model: CompiledModel, sessions: pd.DataFrame, episodes: pd.DataFrame, max_landmark: int) -> pd.DataFrame:
    features = model.build_features(sessions[sessions["session_number"] <= max_landmark], episodes)
    return features[["client_id", "landmark", "label"]].assign(risk=model.predict_features(features))


class _BootstrapOptions(TypedDict):
    min_class_clients: int
    n_resamples: int
    seed: int


def _intake_only(client: MlflowClient, run_id: str) -> float:
    """``intake_only``'s within-session AUC on these test clients, from the training run's report."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = json.loads(Path(client.download_artifacts(run_id, "report.json", tmp)).read_text())
        except (OSError, mlflow.exceptions.MlflowException, ValueError):
            return math.nan
    value = report.get("baselines", {}).get("intake_only", {}).get("within_landmark_auc")
    return math.nan if value is None else float(value)


def _scorer(version: ModelVersion) -> CompiledModel:
    try:
        return load_scorer(f"models:/{MODEL_NAME}/{version.version}")
    except ArtifactError as exc:
        raise PromotionError(f"version {version.version}'s scorer cannot be read: {exc}") from None


def _monotonicity_on(model: CompiledModel, sessions: pd.DataFrame, episodes: pd.DataFrame) -> dict:
    report = monotonicity_violations(model, sessions, episodes)
    return {"monotonicity_worst_rate": report.worst_rate, "monotonicity_worst_rate_from_2": report.worst_rate_from_2}


def promote(
    settings: TrainingSettings, *, version: str | None = None, force: bool = False, reason: str | None = None
) -> Decision:
    """Run the gate for ``version`` (default: the challenger) and move the champion alias if it passes."""
    forced_reason = (reason or "").strip()
    if force and not forced_reason:
        raise PromotionError("--force needs --reason: say why the gate is being overridden")
    client = MlflowClient()
    candidate, champion_version = _versions(client, version)
    decision = Decision(
        promoted=False,
        challenger_version=str(candidate.version),
        champion_version=str(champion_version.version) if champion_version else None,
        forced=force,
    )
    if force:
        decision.promoted = True
        decision.reasons = [f"forced: {forced_reason}"]
    else:
        _run_gate(decision, client, candidate, champion_version, settings)

    # Tags first: the server loads only a version tagged gate=promoted, and polls the alias.
    _tag_version(client, decision)
    if decision.promoted:
        set_alias(CHAMPION, candidate.version, client=client)
    _log_decision(decision, settings, forced_reason or None)  # the reason as the reasons hold it
    return decision


def _versions(client: MlflowClient, version: str | None) -> tuple[ModelVersion, ModelVersion | None]:
    """The version to judge (default: the challenger) and the current champion, if any."""
    if version is None:
        current = version_for_alias(CHALLENGER, client=client)
        if current is None:
            raise PromotionError(f"model {MODEL_NAME} has no {CHALLENGER} version: train one first")
        version = str(current.version)
    try:
        candidate = client.get_model_version(MODEL_NAME, str(version))
    except mlflow.exceptions.MlflowException:
        raise PromotionError(f"model {MODEL_NAME} has no version {version}") from None
    champion_version = version_for_alias(CHAMPION, client=client)
    if champion_version is not None and str(champion_version.version) == str(candidate.version):
        raise PromotionError(f"version {version} is already the {CHAMPION}")
    return candidate, champion_version


def _run_gate(
    decision: Decision,
    client: MlflowClient,
    candidate: ModelVersion,
    champion_version: ModelVersion | None,
    settings: TrainingSettings,
) -> None:
    """Score both models on the challenger's test clients and fill in the gate's verdict."""
    if candidate.run_id is None:  # every version train registers comes from a run
        raise PromotionError(f"version {candidate.version} has no training run to take its test clients from")
    sessions, episodes, oof = stored_test_data(client, candidate.run_id)
    # The scorer artifacts, as serving loads them: the gate judges what would be served, and unpickles nothing.
    challenger_model = _scorer(candidate)
    champion_model = _scorer(champion_version) if champion_version else None
    max_landmark = min(m.spec.max_landmark for m in (challenger_model, champion_model) if m is not None)
    options = _BootstrapOptions(
        min_class_clients=settings.evaluation.min_class_clients,
        n_resamples=settings.training.bootstrap_resamples,
        seed=settings.training.seed,
    )
    if oof is None:
        scored = _scored(challenger_model, sessions, episodes, max_landmark).rename(columns={"risk": "challenger"})
        decision.challenger = model_figures(scored, "challenger", **options)
    else:  # small-data mode: judge the challenger's out-of-fold risks, not its in-sample ones
        oof = oof[oof["session_number"] <= max_landmark]
        scored = mean_over_repeats(oof, ["registered"]).rename(columns={"registered": "challenger"})
        within = stratified_within_landmark_auc(oof, "registered", **options)
        decision.challenger = model_figures(scored, "challenger", **options, within=within)
    decision.challenger.update(_monotonicity_on(challenger_model, sessions, episodes))
    decision.challenger["intake_only_within_landmark_auc"] = _intake_only(client, candidate.run_id)
    if champion_model is not None:
        champion = _scored(champion_model, sessions, episodes, max_landmark)[["client_id", "landmark", "risk"]]
        scored = scored.merge(champion.rename(columns={"risk": "champion"}), on=["client_id", "landmark"])
        decision.champion = model_figures(scored, "champion", **options)
        decision.challenger.update(paired_figures(scored, **options))
    decision.reasons = judge(decision.challenger, decision.champion or None, settings.gate)
    decision.promoted = not decision.reasons


def _tag_version(client: MlflowClient, decision: Decision) -> None:
    """The verdict on the version itself: serving reads ``gate`` (and ``gate_reasons``) before loading it."""
    client.set_model_version_tag(
        MODEL_NAME, decision.challenger_version, "gate", "promoted" if decision.promoted else "rejected"
    )
    client.set_model_version_tag(
        MODEL_NAME, decision.challenger_version, "gate_reasons", "; ".join(decision.reasons) or "passed"
    )


def _log_decision(decision: Decision, settings: TrainingSettings, reason: str | None) -> None:
    """Record every decision as a run of its own in the experiment."""
    use_experiment(settings.training.experiment, settings.training.artifact_location)
    with mlflow.start_run(run_name=f"promotion-v{decision.challenger_version}"):
        mlflow.set_tags(
            {
                "kind": "promotion",
                "promoted": str(decision.promoted),
                "forced": str(decision.forced),
                "challenger_version": decision.challenger_version,
                "champion_version": str(decision.champion_version),
            }
        )
        if reason:
            mlflow.set_tag("reason", reason)
        mlflow.log_params({f"gate.{k}": v for k, v in settings.gate.model_dump().items()})
        for role in ("challenger", "champion"):
            figures = {f"{role}_{k}": float(v) for k, v in getattr(decision, role).items()}
            mlflow.log_metrics({k: v for k, v in figures.items() if math.isfinite(v)})
        mlflow.log_dict(asdict(decision), "decision.json")
