"""The status rules at their edges (serving/monitoring/status.py): how many episodes each O/E rule needs."""

from __future__ import annotations

import numpy as np
import pytest

from dropout_risk.models.realised import observed_expected
from dropout_risk.serving.monitoring.report import Performance
from dropout_risk.serving.monitoring.status import clinic_status
from dropout_risk.serving.settings import MonitoringConfig


def _performance(episodes: int, oe_ci: tuple[float, float]) -> Performance:
    return Performance(
        episodes=episodes,
        dropouts=episodes // 2,
        rows=episodes * 4,
        observed=episodes / 2,
        expected=episodes / 4,
        oe=2.0,
        oe_ci=list(oe_ci),
        calibration_slope=None,
        calibration_intercept=None,
        ece=None,
        within_landmark_auc=None,
        within_landmark_auc_ci=[None, None],
        auc_landmarks=[],
        calibration_bins=[],
    )


@pytest.mark.parametrize(
    ("episodes", "status", "words"),
    [
        (1, "ok", "fewer than monitoring.min_ended_watch=30 ended episodes: calibration not judged"),
        (29, "ok", "calibration not judged"),
        (30, "watch", "O/E interval excludes 1 on fewer than monitoring.min_ended=100"),
        (99, "watch", "at least monitoring.min_ended_watch=30"),
        (100, "recalibrate", "O/E interval excludes 1 with at least monitoring.min_ended=100"),
    ],
)
def test_an_oe_interval_excluding_one_counts_from_min_ended_watch_and_acts_from_min_ended(episodes, status, words):
    judged = clinic_status(_performance(episodes, (1.5, 2.6)), [], None, MonitoringConfig())
    assert judged.status == status and words in judged.rule
    assert judged.figures["ended_episodes"] == episodes


def test_the_floor_is_a_setting():
    config = MonitoringConfig(min_ended_watch=5)
    assert clinic_status(_performance(5, (1.5, 2.6)), [], None, config).status == "watch"
    assert clinic_status(_performance(4, (1.5, 2.6)), [], None, config).status == "ok"
    assert clinic_status(_performance(40, (0.8, 1.3)), [], None, config).status == "ok"


def test_one_clients_oe_has_no_interval():
    """A client-clustered interval from one client has zero width: it is reported as none."""
    one = observed_expected(np.array([1.0, 1.0]), np.array([0.3, 0.4]), np.array([7, 7]))
    assert one.ratio == pytest.approx(2 / 0.7) and np.isnan(one.ci[0]) and np.isnan(one.ci[1])
    two = observed_expected(np.array([1.0, 0.0]), np.array([0.3, 0.4]), np.array([7, 8]))
    assert two.ci[0] < two.ratio < two.ci[1]
