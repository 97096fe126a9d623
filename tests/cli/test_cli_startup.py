"""The command starts without its heavy dependencies: they load inside the command that needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "mlflow", "sklearn", "lightgbm", "pandera", "sqlalchemy", "fastapi", "pyspark", "scipy")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy_modules_after(code: str) -> list[str]:
    return sorted({name.split(".")[0] for name in _modules_after(code)} & set(HEAVY))


def test_importing_the_cli_loads_no_heavy_library():
    assert _heavy_modules_after("import dropout_risk.cli.main") == []


def test_help_of_every_command_loads_no_heavy_library():
    code = (
        "from typer.testing import CliRunner\n"
        "from dropout_risk.cli.main import app\n"
        "commands = [[], ['validate'], ['features'], ['train'], ['score'], ['compare'], ['serve'], ['keys', 'list']]\n"
        "for args in commands:\n"
        "    assert CliRunner().invoke(app, [*args, '--help']).exit_code == 0, args"
    )
    assert _heavy_modules_after(code) == []


def test_the_served_app_loads_no_training_library():
    """A server reads the scorer's plain files: fitting libraries would only slow every start (about 1 s), and
    so would scipy's statistics and optimisers (a monitoring check imports them) and the file contract's
    validation library (pandera, which imports pyspark when it is installed)."""
    loaded = _modules_after("import dropout_risk.serving.app")
    assert not {"sklearn", "lightgbm", "pandera", "scipy.stats", "scipy.optimize"} & loaded


def test_the_help_text_names_the_default_feature_sets():
    from dropout_risk.cli.compare import DEFAULT_FEATURE_SETS_HELP
    from dropout_risk.training.comparison.feature_sets import DEFAULT_FEATURE_SETS

    assert DEFAULT_FEATURE_SETS_HELP == ",".join(DEFAULT_FEATURE_SETS)


def test_the_compare_help_shows_the_config_table_it_names():
    # Rich markup once swallowed "[compare.feature_sets]" as a style tag.
    from typer.testing import CliRunner

    from dropout_risk.cli.main import app

    result = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "200"})
    assert "[compare.feature_sets]" in result.output
