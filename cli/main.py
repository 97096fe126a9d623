"""The ``dropout-risk`` command: a thin layer that parses arguments and calls jobs.

Each command imports what it needs when it runs, so ``dropout-risk --help`` starts in a fraction of a
second instead of importing MLflow, pandas and scikit-learn for every command (benchmarks/cli_startup.py).
"""

from __future__ import annotations

import logging
import os
import warnings

import typer

from dropout_risk.cli import compare, data, monitor, serve, simulate, train

# pandera imports pyspark.pandas when pyspark is installed, which warns about pandas 3 on every command
# although only the Spark engine uses pyspark (and is tested on it).
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
# MLflow's own progress bars and INFO lines would drown the command's output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")

app = typer.Typer(
    name="dropout-risk",
    help="Calibrated, explained psychotherapy dropout risk from session scores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback's locals could hold client data
    rich_markup_mode=None,  # plain help: rendering it with rich costs more imports than the rest of the CLI
)
app.command("validate")(data.validate)
app.command("features")(data.features)
app.command("simulate")(simulate.simulate)
app.command("train")(train.train_command)
app.command("promote")(train.promote_command)
app.command("score")(train.score_command)
app.command("compare")(compare.compare_command)
app.command("serve")(serve.serve)
app.command("export")(serve.export)
app.command("monitor")(monitor.monitor_command)
app.command("recalibrate")(monitor.recalibrate_command)
app.command("import-fhir")(serve.import_fhir)
app.add_typer(serve.keys_app, name="keys")

if __name__ == "__main__":
    app()
