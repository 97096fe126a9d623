"""Figures are written as non-empty PNG files, without a display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dropout_risk.training.evaluation.plots import plot_by_landmark, plot_calibration, plot_decision_curve, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    p = rng.random(600)
    y = (rng.random(600) < p).astype(int)
    return y, p


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_roc_and_decision_curve(sample, tmp_path):
    y, p = sample
    curves = {
        "model": (y, p),
        "noisy": (y, np.clip(p + np.random.default_rng(1).normal(0, 0.3, p.size), 0, 1)),
        "one class": (np.zeros(5), np.linspace(0.1, 0.5, 5)),
    }
    assert _is_png(plot_roc(curves, tmp_path / "nested" / "roc.png"))
    assert _is_png(plot_decision_curve({k: v for k, v in curves.items() if k != "one class"}, tmp_path / "dca.png"))


def test_calibration(sample, tmp_path):
    y, p = sample
    path = plot_calibration(y, p, tmp_path / "calibration.png")
    assert isinstance(path, Path) and _is_png(path)


def test_by_landmark_with_and_without_cis(tmp_path):
    by_landmark = {
        "lightgbm": {"1": {"roc_auc": 0.62}, "2": {"roc_auc": 0.66}, "10": {"roc_auc": 0.71}},
        "logistic": {"1": {"roc_auc": 0.60}, "2": {"roc_auc": float("nan")}, "10": {"roc_auc": 0.69}},
    }
    cis = {
        "lightgbm": {"1": {"roc_auc": [0.58, 0.66]}, "2": {"roc_auc": [0.62, 0.70]}, "10": {"roc_auc": [0.66, 0.76]}}
    }
    assert _is_png(plot_by_landmark(by_landmark, "roc_auc", tmp_path / "auc.png", cis=cis))
    assert _is_png(plot_by_landmark(by_landmark, "roc_auc", tmp_path / "auc_plain.png"))
