"""scripts/landmark_calibration.py end to end on a tiny cohort, so the per-landmark calibration check does not rot.

The script is measurement, not a library: it is loaded from its file. At 600 training clients the
figures are noise; what is checked is that every landmark gets its row, for the model and the truth,
on the held-out and the independent clients, with finite figures and intervals around them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "landmark_calibration.py"
CALIBRATION = ("ece", "calibration_slope", "calibration_intercept")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("landmark_calibration", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def measured(script, tmp_path_factory) -> tuple[list[dict], dict, str]:
    out = tmp_path_factory.mktemp("landmark-calibration") / "figures.json"
    argv = ["--seeds", "3", "--clients", "600", "--independent", "2000", "--resamples", "20", "--json", str(out)]
    results = script.main(argv)
    return results, json.loads(out.read_text()), script.table(results)


@pytest.mark.slow  # trains a model end to end
def test_every_landmark_has_finite_figures_inside_their_intervals(measured):
    results, _, _ = measured
    (result,) = results
    assert result["seed"] == 3
    assert result["independent"]["seed"] == 1003
    for cohort in ("held_out", "independent"):
        for score in ("model", "truth"):
            figures = result[cohort][score]
            landmarks = sorted(int(k) for k in figures if k not in ("pooled", "within_landmark_auc"))
            assert landmarks == list(range(1, 9)), (cohort, score)
            metrics = CALIBRATION + ("roc_auc",) if cohort == "independent" else ("ece",)
            for group in [*map(str, landmarks), "pooled"]:
                row = figures[group]
                assert row["n_clients"] > 0
                for metric in metrics:
                    lo, hi = row["ci"][metric]
                    assert math.isfinite(row[metric]), (cohort, score, group, metric)
                    assert lo <= row[metric] <= hi, (cohort, score, group, metric)
            within = figures["within_landmark_auc"]
            assert 0.5 < within["auc"] < 1 and within["ci"][0] <= within["auc"] <= within["ci"][1]


@pytest.mark.slow  # trains a model end to end
def test_the_held_out_figures_are_the_training_reports_own(measured):
    """The registered scorer on the run's stored held-out clients measures what training reported."""
    (result,), _, _ = measured
    assert result["held_out"]["report_difference"] < 1e-9


@pytest.mark.slow  # trains a model end to end
def test_the_independent_cohort_is_larger_and_only_the_model_gets_a_verdict(measured):
    (result,), written, _ = measured
    independent, held_out = result["independent"], result["held_out"]
    assert independent["n_clients"] > held_out["n_clients"]
    assert independent["model"]["1"]["verdict"] in ("meets", "fails", "undecided")
    assert "verdict" not in independent["truth"]["1"]
    assert written[0]["independent"]["model"]["pooled"]["ece"] == pytest.approx(independent["model"]["pooled"]["ece"])


@pytest.mark.slow  # trains a model end to end
def test_the_table_has_a_line_per_seed_cohort_and_landmark(measured):
    _, _, table = measured
    lines = table.splitlines()
    # header and rule, then per cohort: 8 landmarks, pooled and the within-landmark AUC
    assert len(lines) == 2 + 2 * 10
    assert sum(" independent " in line and " pooled " in line for line in lines) == 1


@pytest.mark.parametrize(
    ("ece", "ece_ci", "slope", "slope_ci", "expected"),
    [
        (0.01, (0.0, 0.02), 1.0, (0.95, 1.05), "meets"),
        (0.04, (0.031, 0.05), 1.0, (0.95, 1.05), "fails"),  # the ECE's whole interval above 0.03
        (0.01, (0.0, 0.02), 0.8, (0.7, 0.89), "fails"),  # the slope's whole interval below 0.9
        (0.01, (0.0, 0.02), 1.2, (1.11, 1.3), "fails"),
        (0.035, (0.02, 0.05), 1.0, (0.95, 1.05), "undecided"),  # over the bound, interval reaches below
        (0.01, (0.0, 0.02), 0.85, (0.75, 0.95), "undecided"),
        (0.03, (0.02, 0.04), 0.9, (0.8, 1.0), "meets"),  # bounds inclusive
    ],
)
def test_verdict(script, ece, ece_ci, slope, slope_ci, expected):
    metrics = {"ece": ece, "calibration_slope": slope, "ci": {"ece": ece_ci, "calibration_slope": slope_ci}}
    assert script.verdict(metrics) == expected
