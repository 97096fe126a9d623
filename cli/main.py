"""The ``dropout-risk`` command: a thin layer that parses arguments and calls jobs."""

from __future__ import annotations

import typer

from cli import data, simulate

app = typer.Typer(
    name="dropout-risk",
    help="Calibrated, explained psychotherapy dropout risk from session scores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback's locals could hold client data
)
app.command("validate")(data.validate)
app.command("features")(data.features)
app.command("simulate")(simulate.simulate)

if __name__ == "__main__":
    app()
