"""``serve``, ``keys``, ``export`` and ``import-fhir``: run the API and manage what it stores."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dropout_risk.cli.common import ConfigOption, console, err_console, fail, settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

keys_app = typer.Typer(help="Create, list and revoke clinics' API keys.", no_args_is_help=True)


def _sessions(config: Path | None, *, writer: bool = True) -> sessionmaker[Session]:
    """Sessions on the migrated database; a reader's (``writer=False``) never takes SQLite's write lock."""
    from dropout_risk.serving.db import make_engine, session_factory
    from dropout_risk.serving.migrate import upgrade
    from dropout_risk.serving.settings import ServingSettings

    project = settings(config, ServingSettings)
    engine = make_engine(project.database_url)
    upgrade(engine)
    if writer:
        return session_factory(engine)
    engine.dispose()
    return session_factory(make_engine(project.database_url, writer=False))


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default from settings).")] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes on this port (more than 1: PostgreSQL only).")
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Serve the champion model to clinics (uvicorn; ``--workers N``: N processes on one port)."""
    import uvicorn

    from dropout_risk.serving import app as app_module
    from dropout_risk.serving.settings import ServingSettings

    project = settings(config, ServingSettings)
    refusal = app_module.workers_refusal(project, workers)
    if refusal:
        fail(refusal)
    # MLflow retries a registry call for minutes by default; the poller should notice an outage quickly
    # and go on serving the model it has.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    logging.basicConfig(level=logging.INFO, format=app_module.LOG_FORMAT)
    options: dict = {
        "host": host or project.serving.host,
        "port": port or project.serving.port,
        # uvicorn's own access log prints request paths, which carry client identifiers: ours logs route templates.
        "access_log": False,
        "log_level": "info",
        # An idle connection is closed after this; 1,100 half-open ones exhausted the descriptors.
        "timeout_keep_alive": project.serving.keep_alive_seconds,
        # Beyond this many connections and requests at once uvicorn answers 503 instead of queueing them all
        # (per worker process).
        "limit_concurrency": project.serving.max_concurrency,
    }
    if workers == 1:
        uvicorn.run(app_module.create_app(project), **options)
        return
    if config is not None:  # each worker reads the settings again, from the same file
        from dropout_risk.features.config import CONFIG_ENV_VAR

        os.environ[CONFIG_ENV_VAR] = str(config.resolve())
    # uvicorn's supervisor starts the workers (spawned: each imports the app afresh) and restarts one that dies.
    uvicorn.run(app_module.WORKER_APP, factory=True, workers=workers, **options)


@keys_app.command("create")
def keys_create(
    clinic: Annotated[str, typer.Option("--clinic", help="Clinic name (created if new).")], config: ConfigOption = None
) -> None:
    """Create a key for a clinic and print it once (only its hash is stored)."""
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.keys import create_key

    with transaction(_sessions(config)) as db:
        key, record = create_key(db, clinic)
    console.print(f"key for clinic [bold]{clinic}[/] (shown once, store it now):", highlight=False)
    print(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's first 12 characters, as `keys list` shows.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.keys import KeyError_, revoke_key

    try:
        with transaction(_sessions(config)) as db:
            count = revoke_key(db, prefix)
    except KeyError_ as exc:
        fail(str(exc))
    if not count:
        fail("no active key with that prefix")
    console.print(f"revoked {count} key(s)")


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys: prefix, clinic, created, revoked."""
    from dropout_risk.serving.db import transaction
    from dropout_risk.serving.keys import list_keys

    with transaction(_sessions(config)) as db:
        rows = list_keys(db)
    table = Table("prefix", "clinic", "created", "revoked")
    for prefix, clinic, created, revoked in rows:
        table.add_row(prefix, clinic, str(created), str(revoked or ""))
    console.print(table)


def export(
    out: Annotated[Path, typer.Option("--out", help="Directory for sessions.csv and episodes.csv.")],
    clinic: Annotated[str | None, typer.Option("--clinic", help="Only this clinic.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write the stored sessions and episodes as the training data contract."""
    from dropout_risk.serving.db import snapshot
    from dropout_risk.serving.export import export_clients

    # A snapshot, not a write transaction: on SQLite that held the write lock for the whole export
    # (54 s on 400k sessions) and the API's writes failed with "database is locked".
    with snapshot(_sessions(config, writer=False)) as db:
        exported = export_clients(db, out, clinic)
    paths = exported.paths
    console.print(f"[bold green]wrote[/] {paths['sessions']} and {paths['episodes']}")
    if exported.skipped:
        console.print(
            f"[bold yellow]skipped {exported.skipped} client(s)[/]: their stored covariates break the rules "
            "(reserved name, text that is not valid Unicode, or a number out of range); fix them with PUT"
        )


def import_fhir(
    file: Annotated[Path, typer.Argument(help="A FHIR R4 Bundle (.json) or an NDJSON file (.ndjson, Bulk Data).")],
    clinic: Annotated[str, typer.Option("--clinic", help="The clinic whose clients these are (keys create).")],
    config: ConfigOption = None,
) -> None:
    """Record a FHIR file's Observations as sessions, with the rules of POST /fhir/r4; exit 1 if any entry failed."""
    from dropout_risk.serving.fhir.job import ImportRefused, import_file
    from dropout_risk.serving.fhir.outcome import expression
    from dropout_risk.serving.settings import ServingSettings

    project = settings(config, ServingSettings)
    try:
        imported = import_file(file, clinic, project)
    except ImportRefused as exc:
        fail(str(exc))
    for entry in imported.incoming.entries:
        for issue in entry.issues:
            where = expression(entry, issue)
            where = where if where.startswith("Bundle.") else f"{entry.label}, {where}"
            err_console.print(f"{issue.severity}: {where}: {issue.rule}", highlight=False, markup=False)
    failed = len(imported.failed)
    rolled_back = imported.incoming.kind == "transaction" and failed
    summary = f"{imported.created} session(s) stored, {imported.unchanged} already stored, {failed} entry(ies) failed"
    console.print(summary + (" (a transaction: nothing stored)" if rolled_back else ""), highlight=False)
    if failed:
        raise typer.Exit(code=1)
