"""How fast the command starts: ``dropout-risk --help`` and ``dropout-risk validate --help`` (target < 0.5 s each).

Run: ``.venv/bin/python benchmarks/cli_startup.py [repeats]``. Each command runs ``repeats`` times as a
fresh process (what a user waits for); the median and the best are printed, beside two references
measured in the same run: a bare ``python -c pass`` and the help of a one-command Typer app with a
``Path`` option, the floor any Typer command pays (Typer itself imports rich and pydantic to render
and convert options). Load from other processes slows every figure alike, so the ratios to the
references say more than the seconds on a busy machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.5
BIN = Path(sys.executable).parent
FLOOR_APP = """
from pathlib import Path
import typer
app = typer.Typer()
@app.command()
def one(path: Path = typer.Option(None, "--path", help="A file.")) -> None:
    "One command."
@app.command()
def two() -> None:
    "Another."
app()
"""


def _timed(command: list[str], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main(repeats: int = 15) -> dict[str, float]:
    python = sys.executable
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "one-command Typer app --help": [python, "-c", FLOOR_APP, "one", "--help"],
        "dropout-risk --help": [str(BIN / "dropout-risk"), "--help"],
        "dropout-risk validate --help": [str(BIN / "dropout-risk"), "validate", "--help"],
    }
    _timed(commands["dropout-risk --help"], 2)  # warm the file cache and bytecode
    medians = {}
    print(f"repeats={repeats} load_average={os.getloadavg()[0]:.2f} target_seconds={TARGET_SECONDS}")
    for name, command in commands.items():
        median, best = _timed(command, repeats)
        medians[name] = median
        print(f"{name:<30} median_seconds={median:.3f} best_seconds={best:.3f}")
    floor = medians["one-command Typer app --help"]
    for name in ("dropout-risk --help", "dropout-risk validate --help"):
        verdict = "met" if medians[name] < TARGET_SECONDS else "NOT met"
        print(f"{name:<30} ratio_to_typer_floor={medians[name] / floor:.2f} target {verdict}")
    return medians


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
