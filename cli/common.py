"""What every command shares: the console, settings loading and clean failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar, overload

import typer
from pydantic import ValidationError
from rich.console import Console

from dropout_risk.features.config import ConfigFileError, ProjectSettings, load_settings
from dropout_risk.features.contract import ContractError
from dropout_risk.training.data import DataFileError

S = TypeVar("S", bound=ProjectSettings)

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


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        fail(f"engine {engine!r} is not available; use {' or '.join(ENGINES)}")


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into a message and exit code 1, without a traceback."""
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
def settings(config: Path | None, cls: type[S]) -> S: ...


def settings(config: Path | None, cls: type[ProjectSettings] = ProjectSettings) -> ProjectSettings:
    """The settings of ``cls`` (a ``ProjectSettings`` subclass: the command's sections) from ``config``."""
    with user_errors():
        return load_settings(cls, config)
