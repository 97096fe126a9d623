"""How fast the command starts: ``dropout-risk --help`` and ``dropout-risk validate --help`` (target < 0.5 s each).

Run: ``.venv/bin/python benchmarks/cli_startup.py [repeats]``. Each command runs ``repeats`` times as a
fresh process (what a user waits for); the median and the best are printed, beside two references
measured in the same run: a bare ``python -c pass`` and the help of a two-command Typer app with
Typer's defaults (help rendered with rich, which imports rich's markdown and syntax modules: what
the project's CLI paid before it asked Typer for plain help). Load from other processes slows every
wall figure alike, so the ratios to the references and the CPU seconds say more than wall seconds
on a busy machine.
"""

from __future__ import annotations

import os
import resource
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


def timed_runs(command: list[str], repeats: int) -> tuple[float, float, float]:
    """Median and best wall seconds, and the median CPU seconds (user + system) of the process.

    CPU time hardly moves when other processes share the cores, so it is the steadier figure on a
    busy machine; wall time is what a user waits for on a quiet one.
    """
    times, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), min(times), statistics.median(cpu)


def main(repeats: int = 15) -> dict[str, float]:
    python = sys.executable
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "one-command Typer app --help": [python, "-c", FLOOR_APP, "one", "--help"],
        "dropout-risk --help": [str(BIN / "dropout-risk"), "--help"],
        "dropout-risk validate --help": [str(BIN / "dropout-risk"), "validate", "--help"],
    }
    timed_runs(commands["dropout-risk --help"], 2)  # warm the file cache and bytecode
    medians = {}
    print(f"repeats={repeats} load_average={os.getloadavg()[0]:.2f} target_seconds={TARGET_SECONDS}")
    for name, command in commands.items():
        median, best, cpu = timed_runs(command, repeats)
        medians[name] = median
        print(f"{name:<30} median_seconds={median:.3f} best_seconds={best:.3f} median_cpu_seconds={cpu:.3f}")
    floor = medians["one-command Typer app --help"]
    for name in ("dropout-risk --help", "dropout-risk validate --help"):
        verdict = "met" if medians[name] < TARGET_SECONDS else "NOT met"
        print(f"{name:<30} ratio_to_typer_floor={medians[name] / floor:.2f} target {verdict}")
    return medians


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
