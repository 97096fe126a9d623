"""``train``, ``promote`` and ``score``: the model lifecycle from the command line."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard, TypeVar, get_args

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dropout_risk.cli.common import (
    ConfigOption,
    EngineOption,
    EpisodesOption,
    SessionsOption,
    SparkMasterOption,
    check_engine,
    console,
    err_console,
    fail,
    settings,
    user_errors,
)
from dropout_risk.features.private_files import private_file
from dropout_risk.models.names import CHAMPION, model_uri

if TYPE_CHECKING:
    from dropout_risk.features.instruments import InstrumentRegistry
    from dropout_risk.models.compiled import CompiledModel
    from dropout_risk.training.jobs.promote import Decision
    from dropout_risk.training.settings import TrainingSettings
    from dropout_risk.training.splits import SplitKind

Loaded = TypeVar("Loaded")


def _report_table(report: dict[str, Any]) -> Table:
    """Within-session AUC first (the honest figure); the pooled AUC, which the session number inflates, after."""
    table = Table(
        title=f"{report['model_name']} v{report['model_version']} ({report['model_kind']}), "
        f"{report['test']['n_clients']} test clients",
        caption="within-session AUC: mean of the per-session AUCs; pooled AUC* includes the session-number effect",
    )
    for column in ("model", "within-session AUC (95% CI)", "pooled AUC*", "PR AUC", "Brier", "cal. slope", "ECE"):
        table.add_column(column)
    chosen = report["model_kind"]
    rows = {f"registered ({chosen})": report["test"], **report["baselines"]}
    for name, metrics in rows.items():
        if name == chosen:
            continue  # the registered model is this candidate: one row, not two
        if "not_applicable" in metrics:
            table.add_row(name, f"not applicable: {metrics['not_applicable']}", "", "", "", "", "")
            continue
        table.add_row(
            name,
            _with_ci(metrics, "within_landmark_auc"),
            _with_ci(metrics, "roc_auc"),
            f"{metrics['pr_auc']:.3f}",
            f"{metrics['brier']:.3f}",
            f"{metrics['calibration_slope']:.2f}",
            f"{metrics['ece']:.3f}",
        )
    if "true_risk" in report:
        truth = report["true_risk"]
        table.add_row("true risk", _number(truth.get("within_landmark_auc")), f"{truth['roc_auc']:.3f}", "", "", "", "")
    return table


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _with_ci(metrics: dict[str, Any], name: str) -> str:
    lo, hi = metrics["ci"].get(name, (None, None))
    if lo is None or hi is None or lo != lo or hi != hi:
        return _number(metrics.get(name))
    return f"{_number(metrics.get(name))} ({lo:.3f}-{hi:.3f})"


def _write_oof(frame: Any, path: Path) -> None:
    if frame is None:
        fail("--oof: out-of-fold risks exist in small-data mode only (--evaluation cv)")
    private_file(path)  # every client's risks: health data, 0600
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    console.print(f"out-of-fold risks: {path}")


def _print_excluded(report: dict[str, Any]) -> None:
    for excluded in report["test"].get("excluded_landmarks", []):
        console.print(f"  session {excluded['landmark']} left out of the within-session AUC: {excluded['reason']}")


def _print_decision(decision: Decision) -> None:
    verdict = "[bold green]promoted[/]" if decision.promoted else "[bold yellow]not promoted[/]"
    console.print(
        f"version {decision.challenger_version}: {verdict} (champion was {decision.champion_version or 'none'})"
    )
    for line in decision.reasons:
        console.print(f"  - {line}", highlight=False)


def _is_split_kind(value: str) -> TypeGuard[SplitKind]:
    from dropout_risk.training.splits import SplitKind

    return value in get_args(SplitKind)


TruthOption = Annotated[Path | None, typer.Option("--truth", help="Simulator truth.csv: adds the true-risk AUC.")]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")]
PromoteOption = Annotated[bool, typer.Option("--promote", help="Run the promotion gate afterwards.")]
SplitOption = Annotated[str, typer.Option("--split", help="Test split: random (by client) or temporal.")]
LocoOption = Annotated[
    bool, typer.Option("--leave-one-clinic-out", help="Also validate the recipe on each clinic held out in turn.")
]
EvaluationOption = Annotated[
    str | None,
    typer.Option(
        "--evaluation",
        help="holdout (a 20% test set) or cv (repeated cross-validation on every client); default: cv below "
        "evaluation.small_data_clients ended episodes.",
    ),
]
OofOption = Annotated[
    Path | None,
    typer.Option("--oof", help="Small-data mode: write every model's out-of-fold risks here (.csv or .parquet)."),
]


def _promote_into(result: dict, project: TrainingSettings, version: str) -> Decision:
    """Run the gate on ``version``; its decision is also written into the report ``result``."""
    from dropout_risk.training.jobs.promote import PromotionError, promote

    try:
        decision = promote(project, version=version)
    except PromotionError as exc:
        fail(str(exc))
    result["promoted"] = decision.promoted
    result["promotion"] = {
        "reasons": decision.reasons,
        "challenger": decision.challenger,
        "champion": decision.champion,
    }
    return decision


def train_command(
    sessions: SessionsOption,
    episodes: EpisodesOption,
    truth: TruthOption = None,
    config: ConfigOption = None,
    report: ReportOption = None,
    do_promote: PromoteOption = False,
    split: SplitOption = "random",
    loco: LocoOption = False,
    evaluation: EvaluationOption = None,
    oof: OofOption = None,
) -> None:
    """Train, validate by client, register as challenger (and optionally promote)."""
    from dropout_risk.training.jobs.train import TrainingDataError, train
    from dropout_risk.training.settings import TrainingSettings
    from dropout_risk.training.splits import SplitError, TiedStartDatesWarning

    if not _is_split_kind(split):
        fail("--split must be random or temporal")
    if evaluation not in (None, "cv", "holdout"):
        fail("--evaluation must be cv or holdout")
    project = settings(config, TrainingSettings)
    with user_errors(), console.status("training") as status:
        try:
            with _warnings_shown(TiedStartDatesWarning):
                outcome = train(
                    sessions,
                    episodes,
                    project,
                    truth_path=truth,
                    split=split,
                    leave_one_clinic_out=loco,
                    progress=lambda message: status.update(message),
                    evaluation=evaluation,  # type: ignore[arg-type]  # checked above
                )
        except (TrainingDataError, SplitError) as exc:
            fail(str(exc))
    result = outcome.report
    decision = _promote_into(result, project, outcome.model_version) if do_promote else None
    console.print(_report_table(result))
    _print_excluded(result)
    console.print(f"evaluation: {result['evaluation']['mode']} ({result['evaluation']['reason']})", highlight=False)
    if oof is not None:
        _write_oof(outcome.oof, oof)
    console.print(f"registered as version {outcome.model_version} (alias challenger), run {outcome.run_id}")
    if decision is not None:
        _print_decision(decision)
    if report:
        private_file(report).write_text(json.dumps(result, indent=2, default=str))
        console.print(f"report: {report}")


def promote_command(
    version: Annotated[str | None, typer.Option("--version", help="Model version (default: the challenger).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (rollback path); needs --reason.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the gate is overridden (logged).")] = None,
    config: ConfigOption = None,
) -> None:
    """Make a version the champion if it passes the gate (or by force, with a reason)."""
    from dropout_risk.training.jobs.promote import PromotionError, promote
    from dropout_risk.training.settings import TrainingSettings

    project = settings(config, TrainingSettings)
    try:
        decision = promote(project, version=version, force=force, reason=reason)
    except PromotionError as exc:
        fail(str(exc))
    _print_decision(decision)
    if not decision.promoted:
        raise typer.Exit(code=1)


def score_command(
    sessions: SessionsOption,
    out: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet; the spark engine: .parquet).")],
    episodes: Annotated[Path | None, typer.Option("--episodes", help="Episodes file (covariates).")] = None,
    model: Annotated[str, typer.Option("--model", help="Model URI.")] = model_uri(CHAMPION),
    engine: EngineOption = "pandas",
    spark_master: SparkMasterOption = "local[*]",
    config: ConfigOption = None,
) -> None:
    """Write client_id, session_number, risk for every session of every client."""
    from dropout_risk.models.registry import load_scorer
    from dropout_risk.training.jobs.score import MissingInstrumentsError, score_file
    from dropout_risk.training.settings import TrainingSettings

    check_engine(engine)
    project = settings(config, TrainingSettings)
    # Both engines score with the scorer from the model's plain files, as serving does (nothing unpickled).
    scorer = _loaded(model, load_scorer)
    registry = project.registry().union(scorer.spec.instruments)
    if engine == "spark":  # Spark ships the scorer to its workers
        _score_on_spark(scorer, sessions, episodes, out, registry, spark_master)
        return
    progress = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("clients"),
        TimeElapsedColumn(),
        console=console,
    )
    with user_errors(), progress:
        task = progress.add_task("score", total=None)
        try:
            scored = score_file(
                scorer,
                sessions,
                episodes,
                out,
                registry,
                advance=lambda n: progress.advance(task, n),
                on_total=lambda n: progress.update(task, total=n),
                warn=lambda text: err_console.print(f"[yellow]warning:[/] {text}", highlight=False),
            )
        except MissingInstrumentsError as exc:
            fail(str(exc))
    console.print(f"[bold green]wrote[/] {out}: {len(scored):,} sessions, {scored['client_id'].nunique():,} clients")


@contextmanager
def _warnings_shown(category: type[Warning]) -> Iterator[None]:
    """Warnings of ``category`` printed as the CLI's own warnings; any other warning as Python shows it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", category)
        yield
    for warning in caught:
        if issubclass(warning.category, category):
            err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _loaded(uri: str, load: Callable[[str], Loaded]) -> Loaded:
    with console.status(f"loading {uri}"):
        try:
            return load(uri)
        except Exception as exc:  # MLflow raises several types for a missing model or store
            hint = _unset_alias_hint(uri)
            fail(hint or f"cannot load model {uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def _unset_alias_hint(uri: str) -> str | None:
    """For ``models:/name@alias`` with no version under that alias: what is registered, and how to name it."""
    from mlflow import MlflowClient

    from dropout_risk.models.registry import version_for_alias

    name, _, alias = uri.removeprefix("models:/").partition("@")
    if not uri.startswith("models:/") or not alias:
        return None
    try:
        if version_for_alias(alias, name) is not None:
            return None
        versions = sorted(int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'"))
    except Exception:  # the store itself is unreachable: the loader's own message says so
        return None
    if not versions:
        return f"cannot load model {uri}: no version of {name} is registered yet; train one first (dropout-risk train)"
    listed = ", ".join(map(str, versions))
    return (
        f"cannot load model {uri}: no version of {name} has the alias {alias} (registered versions: {listed}); "
        f"name one with --model models:/{name}/{versions[-1]} (a version) or --model models:/{name}@challenger, "
        f"or promote one (dropout-risk promote)"
    )


def _score_on_spark(
    scorer: CompiledModel,
    sessions: Path,
    episodes: Path | None,
    out: Path,
    registry: InstrumentRegistry,
    master: str,
) -> None:
    """The same risks computed by Spark: the model's score_history on each bucket of clients, Parquet out."""
    from dropout_risk.training.spark.jobs import score_job
    from dropout_risk.training.spark.session import SparkUnavailableError, spark_for_job

    try:
        with user_errors(), spark_for_job(master) as spark, console.status("scoring on Spark"):
            done = score_job(spark, scorer, sessions, episodes, out, registry)
    except SparkUnavailableError as exc:
        fail(str(exc))
    for warning in done.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"[bold green]wrote[/] {out}: {done.rows:,} sessions, {done.clients:,} clients, a Parquet dataset")
