"""How long the API server's code takes to load: ``import dropout_risk.serving.app`` as a fresh process.

Run: ``.venv/bin/python benchmarks/serving_start.py [repeats]``. Every start of ``dropout-risk serve``
(a deployment's restart, each worker of a scaled-out service, each server the reliability tests start)
pays it before the champion is read. Beside it, in the same run, the floor: a process importing only
the libraries the server cannot start without (FastAPI, SQLAlchemy, MLflow's client, pandas, numpy).
The difference is what the project's own modules and their optional imports cost; the modules the
server must not load (scikit-learn, LightGBM, scipy's statistics, pandera) are listed after the figures.
No target: the ratio to the floor is the figure to watch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cli_startup import timed_runs  # benchmarks/ is on sys.path: this script is run as a file

APP = "import dropout_risk.serving.app"
FLOOR = "import fastapi, sqlalchemy, mlflow, pandas, numpy"
MUST_NOT_LOAD = ("sklearn", "lightgbm", "scipy.stats", "scipy.optimize", "pandera")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    modules = set(json.loads(out.splitlines()[-1]))
    return [name for name in MUST_NOT_LOAD if name in modules]


def main(repeats: int = 7) -> dict[str, float]:
    commands = {"floor (the libraries it needs)": FLOOR, "import dropout_risk.serving.app": APP}
    timed_runs([sys.executable, "-c", APP], 1)  # warm the file cache
    print(f"repeats={repeats} load_average={os.getloadavg()[0]:.2f}")
    medians = {}
    for name, code in commands.items():
        median, best, cpu = timed_runs([sys.executable, "-c", code], repeats)
        medians[name] = median
        print(f"{name:<34} median_seconds={median:.3f} best_seconds={best:.3f} median_cpu_seconds={cpu:.3f}")
    ratio = medians["import dropout_risk.serving.app"] / medians["floor (the libraries it needs)"]
    print(f"{'ratio_to_floor':<34} {ratio:.2f}")
    print(f"{'heavy modules loaded':<34} {', '.join(_loaded(APP)) or 'none'} (of {', '.join(MUST_NOT_LOAD)})")
    return medians


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
