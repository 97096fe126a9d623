"""What every command shares: the console, settings loading and clean failure.

Importing a command module must stay cheap (``dropout-risk --help`` imports them all): only typer, rich
and the standard library at module level; pandas, MLflow, scikit-learn and our own heavy modules are
imported inside the command that needs them (benchmarks/cli_startup.py measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar, overload

import typer
from rich.console import Console

if TYPE_CHECKING:
    from dropout_risk.features.config import ProjectSettings

console = Console()
# Problem lines are never wrapped: one problem, one line, greppable.
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file (default: $DROPOUT_RISK_CONFIG or ./dropout-risk.toml)."),
]
ENGINES = ("pandas", "spark")
EngineOption = Annotated[str, typer.Option("--engine", help="pandas (one machine) or spark.")]
SparkMasterOption = Annotated[
    str,
    typer.Option(
        "--spark-master",
        help="Spark master URL (--engine spark): local[*], local[N], spark://host:7077, yarn, k8s://...",
    ),
]
SessionsOption = Annotated[Path, typer.Option("--sessions", help="Sessions file (.csv or .parquet).")]
EpisodesOption = Annotated[Path, typer.Option("--episodes", help="Episodes file (.csv or .parquet).")]

Settings = TypeVar("Settings", bound="ProjectSettings")


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        fail(f"engine {engine!r} is not available; use {' or '.join(ENGINES)}")


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into a message and exit code 1, without a traceback."""
    from pydantic import ValidationError

    from dropout_risk.features.config import ConfigFileError
    from dropout_risk.features.contract import ContractError
    from dropout_risk.training.data import DataFileError

    try:
        yield
    except (DataFileError, ConfigFileError, ContractError) as exc:
        fail(str(exc))
    except ValidationError as exc:
        # pydantic's default message includes the input value; show where and why only.
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        fail(f"invalid configuration: {details}")


@overload
def settings(config: Path | None) -> ProjectSettings: ...
@overload
def settings(config: Path | None, cls: type[Settings]) -> Settings: ...
def settings(config: Path | None, cls: type[ProjectSettings] | None = None) -> ProjectSettings:
    """The settings of class ``cls`` (default ``ProjectSettings``) from the TOML file and environment."""
    from dropout_risk.features.config import ProjectSettings, load_settings

    with user_errors():
        return load_settings(cls or ProjectSettings, config)
