"""The promotion gate: a challenger becomes champion only if it is no worse, and calibrated.

Both models are scored afresh on the challenger's held-out test clients (stored
with its training run), each with its own feature spec and trajectories, so the
comparison is on the same clients whatever the two models were trained on.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from dropout_risk.models.packaged import DropoutRiskModel
from dropout_risk.models.registry import CHALLENGER, CHAMPION, MODEL_NAME, load_model, set_alias, version_for_alias
from dropout_risk.training.evaluation.metrics import calibration_slope_intercept, expected_calibration_error, roc_auc
from dropout_risk.training.evaluation.monotonicity import monotonicity_violations
from dropout_risk.training.jobs.train import TEST_DATA_DIR
from dropout_risk.training.settings import GateConfig, TrainingSettings
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


def _test_data(client: MlflowClient, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, TEST_DATA_DIR, tmp))
        return (pd.read_parquet(local / "test_sessions.parquet"), pd.read_parquet(local / "test_episodes.parquet"))


def _metrics_on(model: DropoutRiskModel, sessions: pd.DataFrame, episodes: pd.DataFrame, max_landmark: int) -> dict:
    features = model.build_features(sessions[sessions["session_number"] <= max_landmark], episodes)
    y, p = features["label"].to_numpy(dtype=int), model.predict_features(features)
    slope, intercept = calibration_slope_intercept(y, p)
    return {
        "roc_auc": roc_auc(y, p),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p),
        "n_rows": int(len(y)),
        "n_clients": int(features["client_id"].nunique()),
    }


def _monotonicity_on(model: DropoutRiskModel, sessions: pd.DataFrame, episodes: pd.DataFrame) -> dict:
    report = monotonicity_violations(model, sessions, episodes)
    return {"monotonicity_worst_rate": report.worst_rate, "monotonicity_worst_rate_from_2": report.worst_rate_from_2}


def judge(challenger: dict, champion: dict | None, gate: GateConfig) -> list[str]:
    """Reasons the challenger fails the gate (empty = it passes)."""
    reasons = []
    slope = challenger["calibration_slope"]
    if not gate.slope_min <= slope <= gate.slope_max:
        reasons.append(f"calibration slope {slope:.3f} outside {gate.slope_min}-{gate.slope_max}")
    if not challenger["ece"] <= gate.max_ece:
        reasons.append(f"ECE {challenger['ece']:.3f} above {gate.max_ece}")
    worst = challenger.get("monotonicity_worst_rate", 0.0)
    if not worst <= gate.max_monotonicity_violation:
        reasons.append(
            f"the risk fell when the latest session was made worse in {worst:.1%} of held-out histories (worst of: "
            "alliance or outcome 5 points worse, one more missed appointment, with or without a week's delay); at "
            f"most {gate.max_monotonicity_violation:.1%} is allowed (gate.max_monotonicity_violation)"
        )
    if champion is not None and not challenger["roc_auc"] >= champion["roc_auc"] - gate.max_auc_drop:
        reasons.append(
            f"AUC {challenger['roc_auc']:.3f} is more than {gate.max_auc_drop} below the champion's "
            f"{champion['roc_auc']:.3f} on the same test clients"
        )
    return reasons


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
    _log_decision(decision, settings, reason)
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
    sessions, episodes = _test_data(client, candidate.run_id)
    challenger_model = load_model(f"models:/{MODEL_NAME}/{candidate.version}")
    champion_model = load_model(f"models:/{MODEL_NAME}/{champion_version.version}") if champion_version else None
    max_landmark = min(m.spec.max_landmark for m in (challenger_model, champion_model) if m is not None)
    decision.challenger = _metrics_on(challenger_model, sessions, episodes, max_landmark)
    decision.challenger.update(_monotonicity_on(challenger_model, sessions, episodes))
    if champion_model is not None:
        decision.champion = _metrics_on(champion_model, sessions, episodes, max_landmark)
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
            mlflow.log_metrics({f"{role}_{k}": float(v) for k, v in getattr(decision, role).items()})
        mlflow.log_dict(asdict(decision), "decision.json")
