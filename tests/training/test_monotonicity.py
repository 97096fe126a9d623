"""The monotonicity measure: counts of risks that fall when the latest session gets worse.

The scorers here are real objects of the ``HistoryScorer`` protocol whose risk is a known
function of the history, so every count is worked out by hand from the three-client table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.contract import validate_contract
from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.models.registry import load_scorer
from dropout_risk.training.data import read_table
from dropout_risk.training.evaluation.monotonicity import (
    MonotonicityReport,
    PerturbationResult,
    monotonicity_violations,
)
from tests.support.mlflow_store import active_store

REGISTRY = default_registry()
NAMES = ("alliance_down", "outcome_worse", "missed_more", "missed_more_week_later")
NAN = np.nan


class LinearScorer:
    """Risk at session k = 0.5 + alliance x SRS(k) + outcome x ORS(k) + missed x missed so far + days x days since
    session 1 (a missing score counts as 0). Keeps a count of its calls."""

    def __init__(self, spec: FeatureSpec, *, alliance: float, outcome: float, missed: float, days: float):
        self.spec = spec
        self.weights = {"srs": alliance, "ors": outcome}
        self.missed, self.days = missed, days
        self.calls = 0

    def score_history(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame:
        self.calls += 1
        s = sessions.sort_values(["client_id", "session_number"]).reset_index(drop=True)
        by_client = s.groupby("client_id", sort=False)
        days = (s["session_date"] - by_client["session_date"].transform("min")).dt.days
        missed = s["missed_since_last"].fillna(0).groupby(s["client_id"], sort=False).cumsum()
        risk = 0.5 + self.missed * missed + self.days * days
        for key, weight in self.weights.items():
            if key in s:
                risk = risk + weight * s[key].fillna(0)
        landmark = np.minimum(s["session_number"], self.spec.max_landmark)
        return pd.DataFrame(
            {"client_id": s["client_id"], "session_number": s["session_number"], "landmark": landmark, "risk": risk}
        )


def spec_with(*keys: str, max_landmark: int = 3) -> FeatureSpec:
    return FeatureSpec(max_landmark=max_landmark, off_track_z=1.0, instruments=tuple(REGISTRY[k] for k in keys))


def three_clients() -> pd.DataFrame:
    """a: 4 sessions (the 4th past the last landmark), b: 2, c: 3; SRS and ORS chosen for the skipping rules."""
    rows = [
        # client, session, date, missed, srs, ors
        ("a", 1, "2024-01-01", NAN, 30, 10),
        ("a", 2, "2024-01-08", 1, 38, 20),
        ("a", 3, "2024-01-15", NAN, 2, 30),  # SRS 2 - 5 is clipped to 0: still a change
        ("a", 4, "2024-01-22", 2, 10, 35),  # past max_landmark 3: never a latest session
        ("b", 1, "2024-02-01", NAN, 0, 0),  # both at the worst end: skipped
        ("b", 2, "2024-02-15", 0, NAN, 40),  # SRS missing: skipped
        ("c", 1, "2024-03-01", NAN, 40, NAN),  # ORS missing: skipped
        ("c", 2, "2024-03-05", NAN, NAN, 3),  # SRS missing: skipped; ORS 3 -> 0
        ("c", 3, "2024-03-09", 1, 36, 12),
    ]
    frame = pd.DataFrame(
        rows, columns=["client_id", "session_number", "session_date", "missed_since_last", "srs", "ors"]
    )
    episodes = pd.DataFrame({"client_id": ["a", "b", "c"], "status": ["dropout", "completed", "ongoing"]})
    result = validate_contract(frame.astype({"session_date": str}), episodes, REGISTRY)
    assert result.ok, result.problems
    return result.sessions


def counts(report: MonotonicityReport) -> dict[str, tuple[int, int, int, int]]:
    return {r.name: (r.histories, r.violations, r.histories_from_2, r.violations_from_2) for r in report.results}


def test_a_risk_that_rises_with_every_worsening_has_no_violations():
    scorer = LinearScorer(spec_with("ors", "srs"), alliance=-0.01, outcome=-0.01, missed=0.02, days=0.001)
    report = monotonicity_violations(scorer, three_clients())
    # Histories: a at 1, 2, 3; b at 1, 2; c at 1, 2, 3 (8). SRS changes at a1, a2, a3, c1, c3; ORS at a1-a3, b2, c2, c3.
    assert counts(report) == {
        "alliance_down": (5, 0, 3, 0),
        "outcome_worse": (6, 0, 5, 0),
        "missed_more": (8, 0, 5, 0),
        "missed_more_week_later": (8, 0, 5, 0),
    }
    assert report.worst_rate == report.worst_rate_from_2 == 0.0
    assert report.violations_above(0.0) == []
    assert scorer.calls == 5  # once as recorded, once per perturbation: no per-client scoring


def test_a_risk_that_rises_with_alliance_and_falls_with_time_is_counted_exactly():
    scorer = LinearScorer(spec_with("ors", "srs"), alliance=0.01, outcome=0.0, missed=0.002, days=-0.001)
    report = monotonicity_violations(scorer, three_clients())
    # Every SRS change lowers the risk. A week later moves the days since session 1 by 7 (-0.007) for
    # the one more missed (+0.002), except at session 1, which is its own first date.
    assert counts(report) == {
        "alliance_down": (5, 5, 3, 3),
        "outcome_worse": (6, 0, 5, 0),
        "missed_more": (8, 0, 5, 0),
        "missed_more_week_later": (8, 5, 5, 5),
    }
    week_later = report.results[3]
    assert week_later.rate == 5 / 8 and week_later.rate_from_2 == 1.0
    assert report.worst_rate == 1.0 and report.worst_rate_from_2 == 1.0
    assert [r.name for r in report.violations_above(0.7)] == ["alliance_down"]
    assert [r.name for r in report.violations_above(0.7, from_2=True)] == ["alliance_down", "missed_more_week_later"]


def test_a_fall_within_the_tolerance_is_not_a_violation():
    scorer = LinearScorer(spec_with("ors", "srs"), alliance=0.01, outcome=0.0, missed=0.002, days=-0.001)
    report = monotonicity_violations(scorer, three_clients(), tolerance=0.01)
    # The week later costs 0.005: inside. SRS falls of 5 cost 0.05, but a3's 2 -> 0 costs only 0.02.
    assert counts(report)["missed_more_week_later"] == (8, 0, 5, 0)
    assert counts(report)["alliance_down"] == (5, 5, 3, 3)
    report = monotonicity_violations(scorer, three_clients(), tolerance=0.03)
    assert counts(report)["alliance_down"] == (5, 4, 3, 2)


def test_the_step_is_on_each_instruments_own_scale_and_direction():
    # PHQ-9 is lower-is-better: worse is higher, clipped at 27. Only a1 (20 -> 25), a2 (26 -> 27) and c1 change.
    sessions = three_clients().drop(columns=["ors", "srs"])
    sessions["phq9"] = [20, 26, 27, 5, 27, NAN, 0, NAN, 27]
    scorer = LinearScorer(spec_with("phq9"), alliance=0.0, outcome=0.0, missed=0.0, days=0.0)
    scorer.weights = {"phq9": -0.01}  # a risk that falls as depression rises: every change a violation
    report = monotonicity_violations(scorer, sessions)
    outcome = report.results[1]
    assert (outcome.histories, outcome.violations, outcome.histories_from_2, outcome.violations_from_2) == (3, 3, 1, 1)
    assert outcome.description == "outcome 5 points higher (PHQ9) at the latest session"


def test_without_an_alliance_instrument_nothing_is_counted_for_alliance():
    scorer = LinearScorer(spec_with("ors"), alliance=0.01, outcome=-0.01, missed=0.02, days=0.0)
    report = monotonicity_violations(scorer, three_clients())
    alliance = report.results[0]
    assert (alliance.histories, alliance.violations, alliance.rate, alliance.rate_from_2) == (0, 0, 0.0, 0.0)
    assert "no alliance instrument" in alliance.description
    assert scorer.calls == 4  # nothing to score for alliance
    assert report.worst_rate == 0.0


def test_the_latest_session_is_moved_a_week_and_nothing_else():
    seen: list[pd.DataFrame] = []

    class Recorder(LinearScorer):
        def score_history(self, sessions, episodes=None):
            seen.append(sessions.copy())
            return super().score_history(sessions, episodes)

    sessions = three_clients()
    monotonicity_violations(Recorder(spec_with("ors", "srs"), alliance=0, outcome=0, missed=0, days=0), sessions)
    original, week_later = seen[0], seen[-1]
    assert len(original) == len(week_later) == 1 + 2 + 3 + 1 + 2 + 1 + 2 + 3  # sessions 1..k of each history
    latest = original["session_number"] == original.groupby("client_id")["session_number"].transform("max")
    moved = week_later["session_date"] - original["session_date"]
    assert (moved[latest] == pd.Timedelta(days=7)).all() and (moved[~latest] == pd.Timedelta(0)).all()
    missed = week_later["missed_since_last"] - original["missed_since_last"].fillna(0)
    assert (missed[latest] == 1).all()
    assert original["missed_since_last"][~latest].equals(week_later["missed_since_last"][~latest])
    # The internal ids never meet a real one: each history is scored as a client of its own.
    assert original["client_id"].nunique() == 8 and not original["client_id"].isin(["a", "b", "c"]).any()


def test_episodes_follow_each_history():
    class CovariateScorer(LinearScorer):
        def score_history(self, sessions, episodes=None):
            scored = super().score_history(sessions, episodes)
            age = scored["client_id"].map(episodes.set_index("client_id")["age"])
            assert age.notna().all()
            return scored.assign(risk=scored["risk"] + 0.001 * age)

    episodes = pd.DataFrame(
        {"client_id": ["a", "b", "c"], "status": ["dropout", "completed", "ongoing"], "age": [30, 40, 50]}
    )
    scorer = CovariateScorer(spec_with("ors", "srs"), alliance=0.01, outcome=0.0, missed=0.0, days=0.0)
    report = monotonicity_violations(scorer, three_clients(), episodes.astype({"client_id": "string"}))
    assert counts(report)["alliance_down"] == (5, 5, 3, 3)


def test_a_scorer_that_loses_a_history_is_an_error_that_names_no_client():
    class Lossy(LinearScorer):
        def score_history(self, sessions, episodes=None):
            scored = super().score_history(sessions, episodes)
            return scored[~scored["client_id"].str.startswith("secret-client")]

    sessions = three_clients().assign(client_id=lambda f: "secret-client-" + f["client_id"])
    with pytest.raises(ValueError) as raised:
        monotonicity_violations(Lossy(spec_with("ors", "srs"), alliance=0, outcome=0, missed=0, days=0), sessions)
    assert "secret" not in str(raised.value)


def test_to_json_is_json_safe_with_rounded_rates():
    results = (
        PerturbationResult("alliance_down", "alliance 5 points lower (SRS) at the latest session", 3, 1, 0, 0),
        PerturbationResult("missed_more", "one more missed appointment", 8, 2, 6, 2),
    )
    report = MonotonicityReport(results=results, tolerance=1e-9)
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "tolerance": 1e-9,
        "worst_rate": 0.333333,
        "worst_rate_from_2": 0.333333,
        "perturbations": {
            "alliance_down": {
                "description": "alliance 5 points lower (SRS) at the latest session",
                "histories": 3,
                "violations": 1,
                "rate": 0.333333,
                "histories_from_2": 0,
                "violations_from_2": 0,
                "rate_from_2": 0.0,
            },
            "missed_more": {
                "description": "one more missed appointment",
                "histories": 8,
                "violations": 2,
                "rate": 0.25,
                "histories_from_2": 6,
                "violations_from_2": 2,
                "rate_from_2": 0.333333,
            },
        },
    }
    assert "alliance_down" in report.format_table()


def test_a_trained_model_is_measured_on_every_history(champion):
    with active_store(champion.store):
        scorer = load_scorer(f"models:/dropout-risk/{champion.version}")
    raw = validate_contract(read_table(champion.data["sessions"]), read_table(champion.data["episodes"]), REGISTRY)
    clients = raw.episodes["client_id"].iloc[:60]
    sessions = raw.sessions[raw.sessions["client_id"].isin(clients)].reset_index(drop=True)
    episodes = raw.episodes[raw.episodes["client_id"].isin(clients)].reset_index(drop=True)
    report = monotonicity_violations(scorer, sessions, episodes)
    cut = sessions[sessions["session_number"] <= scorer.spec.max_landmark]
    expected = {
        "alliance_down": int((cut["srs"] > 0).sum()),
        "outcome_worse": int((cut["ors"] > 0).sum()),
        "missed_more": len(cut),
        "missed_more_week_later": len(cut),
    }
    assert {r.name: r.histories for r in report.results} == expected
    assert {r.name: r.histories - r.histories_from_2 for r in report.results}["missed_more"] == len(clients)
    assert all(0 <= r.violations <= r.histories and r.violations_from_2 <= r.violations for r in report.results)
