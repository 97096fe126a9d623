"""Fast contract tests for the cohort simulator (``training.simulate``).

The data contract (columns, types, ranges, ordering, byte-stable files) is the
interface every other package reads; the statistics live in
``test_simulate_statistics.py``.
"""

from __future__ import annotations

import datetime
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry
from dropout_risk.training.evaluation.metrics import roc_auc
from dropout_risk.training.evaluation.within_landmark import evaluable_landmarks, within_landmark_auc
from dropout_risk.training.simulation.cohort import (
    Cohort,
    SimulationConfig,
    _client_ids,
    _streams,
    population_of,
    simulate_cohort,
    write_cohort,
)
from dropout_risk.training.simulation.parameters import MAX_SESSIONS
from dropout_risk.training.simulation.process import (
    calibrate_intercept,
    draw_latents,
    expected_dropout,
    hazard_logit_without_intercept,
    planned_length_pmf,
    true_risk_matrix,
)

REGISTRY = default_registry()
SESSION_BASE = ["client_id", "session_number", "session_date", "missed_since_last"]
EPISODE_COLUMNS = ["client_id", "status", "clinic_id", "therapist_id", "age", "gender"]
TRUTH_COLUMNS = ["client_id", "session_number", "true_risk"]


@pytest.fixture(scope="module")
def cohort(cohorts) -> Cohort:
    return cohorts.simulate(400, seed=7)


def assert_contract(cohort: Cohort, config: SimulationConfig) -> None:
    """Every invariant of the data contract that does not depend on statistics."""
    s, e, t = cohort.sessions, cohort.episodes, cohort.truth
    score_columns = [config.outcome] + ([] if config.alliance == "none" else [config.alliance])
    assert list(s.columns) == SESSION_BASE + score_columns
    assert list(e.columns) == EPISODE_COLUMNS
    assert list(t.columns) == TRUTH_COLUMNS

    # Episodes: one row per client, zero-padded ids that sort like their numbers.
    assert len(e) == config.n_clients
    assert e["client_id"].is_unique
    assert e["client_id"].str.fullmatch(r"C\d{5,}").all()
    assert e["client_id"].str.len().nunique() == 1
    assert list(e["client_id"]) == sorted(e["client_id"])
    assert set(e["status"]) <= {"dropout", "completed", "ongoing"}
    assert (e["status"] == "ongoing").sum() == round(config.ongoing_fraction * config.n_clients)
    assert e["clinic_id"].str.fullmatch(r"clinic\d{2,}").all()
    assert e["clinic_id"].nunique() <= config.n_clinics
    # Therapists are nested in clinics: each works in exactly one.
    assert (e.groupby("therapist_id")["clinic_id"].nunique() == 1).all()
    assert (e["therapist_id"].str.split("-t").str[0] == e["clinic_id"]).all()
    assert pd.api.types.is_integer_dtype(e["age"]) and e["age"].between(18, 80).all()
    assert set(e["gender"]) <= {"F", "M", "other"}

    # Sessions: every client attended >= 1 session, numbered 1..n, sorted, dates non-decreasing.
    assert set(s["client_id"]) == set(e["client_id"])
    assert pd.api.types.is_integer_dtype(s["session_number"])
    assert pd.api.types.is_integer_dtype(s["missed_since_last"]) and (s["missed_since_last"] >= 0).all()
    assert s.equals(s.sort_values(["client_id", "session_number"]).reset_index(drop=True))
    g = s.groupby("client_id")
    assert (g["session_number"].min() == 1).all()
    assert (g["session_number"].max() == g.size()).all()
    assert (g["session_number"].diff().dropna() == 1).all()
    assert s["session_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    dates = pd.to_datetime(s["session_date"], format="%Y-%m-%d")
    assert (dates.groupby(s["client_id"]).diff().dropna() >= pd.Timedelta(0)).all()
    assert dates.min() >= pd.Timestamp(config.start_date)
    assert s["session_number"].max() <= MAX_SESSIONS

    # Scores: in range, on the instrument's own grid (one decimal for ORS/SRS, else integers).
    for key in score_columns:
        inst = REGISTRY[key]
        assert s[key].notna().all()
        assert s[key].between(inst.min, inst.max).all(), key
        if key in {"ors", "srs"}:
            assert np.allclose(s[key] * 10, np.round(s[key] * 10))
        else:
            assert pd.api.types.is_integer_dtype(s[key]), key

    # Completers attended at least the minimum planned course; statuses match histories.
    per_client = e.set_index("client_id").join(g.size().rename("n"))
    assert (per_client.loc[per_client["status"] == "completed", "n"] >= 2).all()

    # Truth: exactly one row per session row, a probability with fixed precision.
    assert t[["client_id", "session_number"]].equals(s[["client_id", "session_number"]])
    assert t["true_risk"].notna().all()
    assert t["true_risk"].between(0, 1).all()
    assert np.allclose(t["true_risk"], t["true_risk"].round(6), atol=0, rtol=0)


# ------------------------------------------------------------------ schema and contract


def test_default_cohort_meets_the_contract(cohort):
    assert_contract(cohort, SimulationConfig(n_clients=400, seed=7))


@pytest.mark.parametrize("outcome", ["ors", "phq9", "oq45", "core10"])
@pytest.mark.parametrize("alliance", ["srs", "wai_sr", "none"])
def test_every_instrument_combination_meets_the_contract(outcome, alliance):
    config = SimulationConfig(n_clients=120, seed=3, outcome=outcome, alliance=alliance)
    assert_contract(simulate_cohort(config), config)


def test_alliance_none_omits_the_alliance_column():
    s = simulate_cohort(SimulationConfig(n_clients=50, alliance="none")).sessions
    assert "srs" not in s.columns and "wai_sr" not in s.columns
    assert "ors" in s.columns


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_clients=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    dropout_rate=st.floats(0.02, 0.98),
    n_clinics=st.integers(1, 12),
    alliance_effect=st.floats(0, 5),
    outcome_effect=st.floats(0, 5),
    ongoing_fraction=st.floats(0, 0.9),
)
def test_contract_holds_for_any_valid_config(
    n_clients, seed, dropout_rate, n_clinics, alliance_effect, outcome_effect, ongoing_fraction
):
    config = SimulationConfig(
        n_clients=n_clients,
        seed=seed,
        dropout_rate=dropout_rate,
        n_clinics=n_clinics,
        alliance_effect=alliance_effect,
        outcome_effect=outcome_effect,
        ongoing_fraction=ongoing_fraction,
    )
    assert_contract(simulate_cohort(config), config)


def test_client_ids_widen_beyond_99999_clients():
    ids = _client_ids(100_000)  # the simulator's own id formatter; simulating 100k is slow
    assert ids[0] == "C000001" and ids[-1] == "C100000"
    assert list(ids) == sorted(ids)


def test_dates_stay_within_the_intake_span_plus_treatment():
    config = SimulationConfig(n_clients=300, start_date=datetime.date(2020, 3, 1), intake_span_days=30)
    s = simulate_cohort(config).sessions
    first = pd.to_datetime(s.loc[s["session_number"] == 1, "session_date"])
    assert first.min() >= pd.Timestamp("2020-03-01")
    # First sessions fall in the intake window, pushed back a week per missed first appointment.
    missed_first = s.loc[s["session_number"] == 1, "missed_since_last"].to_numpy()
    offered = first - pd.to_timedelta(7 * missed_first, unit="D")
    assert offered.max() < pd.Timestamp("2020-03-31")


def test_missed_appointments_delay_the_next_session():
    s = simulate_cohort(SimulationConfig(n_clients=2000, seed=5)).sessions
    dates = pd.to_datetime(s["session_date"])
    gap = dates.groupby(s["client_id"]).diff().dt.days
    later = s["session_number"] > 1
    extra = gap[later] - 7 * s.loc[later, "missed_since_last"]
    assert extra.between(5, 9).all()  # a week +- jitter once the missed weeks are taken off


def test_registry_ranges_are_honoured():
    # A registry whose ORS tops out at 30 must clip simulated ORS scores there.
    narrow = InstrumentRegistry(
        [Instrument(**{**REGISTRY["ors"].model_dump(), "max": 30.0})]
        + [inst for key, inst in REGISTRY.items() if key != "ors"]
    )
    s = simulate_cohort(SimulationConfig(n_clients=500, seed=2), registry=narrow).sessions
    assert s["ors"].max() == 30.0


# ------------------------------------------------------------------ determinism and files


def read_bytes(paths: dict) -> dict:
    return {name: path.read_bytes() for name, path in paths.items()}


def test_same_seed_writes_byte_identical_files(tmp_path):
    config = SimulationConfig(n_clients=300, seed=11)
    first = write_cohort(simulate_cohort(config), tmp_path / "a")
    second = write_cohort(simulate_cohort(config), tmp_path / "b")
    assert set(first) == {"sessions", "episodes", "truth"}
    assert [p.name for p in first.values()] == ["sessions.csv", "episodes.csv", "truth.csv"]
    assert read_bytes(first) == read_bytes(second)


def test_a_cohort_drawn_from_its_own_population_is_the_cohort_itself(tmp_path):
    config = SimulationConfig(n_clients=300, seed=11)
    own = simulate_cohort(config, population=population_of(config))
    assert read_bytes(write_cohort(own, tmp_path / "a")) == read_bytes(
        write_cohort(simulate_cohort(config), tmp_path / "b")
    )


def test_more_clients_of_a_population_keep_its_clinics_and_intercept_not_their_own():
    """A large cohort checking a model must come from the training cohort's population: its own seed
    would draw other clinic effects and tune b0 to its own clients."""
    training = SimulationConfig(n_clients=400, seed=3)
    population = population_of(training)
    more = training.model_copy(update={"n_clients": 3000, "seed": 1003})
    drawn = simulate_cohort(more, population=population)
    alone = population_of(more)
    assert not np.allclose(alone.clinics.clinic_effect, population.clinics.clinic_effect)
    assert alone.intercept != pytest.approx(population.intercept, abs=1e-6)
    # The drawn clients' true risk is the population's: recomputed with the training b0 and clinic table.
    streams = _streams(1003)
    latents = draw_latents(streams, 3000, training.n_clinics, population.clinics)
    logit_h = hazard_logit_without_intercept(latents, *more.hazard_effects()) + population.intercept
    risk = true_risk_matrix(logit_h, planned_length_pmf(MAX_SESSIONS))
    first = drawn.truth.groupby("client_id", sort=True)["true_risk"].first().to_numpy()
    assert first == pytest.approx(np.round(risk[:, 0], 6), abs=1e-9)
    with pytest.raises(ValueError, match="number of clinics"):
        simulate_cohort(more.model_copy(update={"n_clinics": 4}), population=population)


def test_other_seed_writes_different_files(tmp_path):
    first = read_bytes(write_cohort(simulate_cohort(SimulationConfig(n_clients=300, seed=11)), tmp_path / "a"))
    other = read_bytes(write_cohort(simulate_cohort(SimulationConfig(n_clients=300, seed=12)), tmp_path / "b"))
    for name in first:
        assert first[name] != other[name], name


def test_written_files_round_trip(tmp_path, cohort):
    paths = write_cohort(cohort, tmp_path)
    sessions = pd.read_csv(paths["sessions"], dtype={"client_id": str, "session_date": str})
    truth = pd.read_csv(paths["truth"], dtype={"client_id": str})
    episodes = pd.read_csv(paths["episodes"], dtype=str)
    pd.testing.assert_frame_equal(sessions, cohort.sessions, check_dtype=False)
    pd.testing.assert_frame_equal(truth, cohort.truth, check_dtype=False)
    assert list(episodes["client_id"]) == list(cohort.episodes["client_id"])
    # Fixed float formats: no scientific notation, six decimals for true_risk, one for ORS/SRS.
    text = paths["truth"].read_text()
    assert "e-" not in text
    assert re.search(r",0\.\d{6}\n", text)
    assert re.search(r",\d+\.\d,\d+\.\d\n", paths["sessions"].read_text())


def test_switching_instrument_keeps_the_same_clients():
    ors = simulate_cohort(SimulationConfig(n_clients=200, seed=4))
    phq = simulate_cohort(SimulationConfig(n_clients=200, seed=4, outcome="phq9", alliance="wai_sr"))
    pd.testing.assert_frame_equal(ors.episodes, phq.episodes)
    pd.testing.assert_frame_equal(ors.truth, phq.truth)


# ------------------------------------------------------------------ the truth and its calibration


def brute_force_true_risk(hazard: np.ndarray, pmf: np.ndarray, k: int) -> float:
    """The docstring definition, term by term: sum_{L >= k} P(L | L >= k) (1 - prod_{j=k}^{L-1} (1 - h_j))."""
    tail = pmf[k:].sum()
    total = 0.0
    for length in range(k, len(pmf)):
        stay = np.prod(1 - hazard[k - 1 : length - 1])
        total += pmf[length] / tail * (1 - stay)
    return total


def test_true_risk_matrix_matches_its_definition():
    rng = np.random.default_rng(0)
    logits = rng.normal(-2.5, 1.0, size=(4, MAX_SESSIONS))
    pmf = planned_length_pmf(MAX_SESSIONS)
    risk = true_risk_matrix(logits, pmf)
    hazard = 1 / (1 + np.exp(-logits))
    for i in range(logits.shape[0]):
        for k in (1, 2, 5, 13, MAX_SESSIONS):
            assert risk[i, k - 1] == pytest.approx(brute_force_true_risk(hazard[i], pmf, k), abs=1e-12)


def test_true_risk_falls_to_zero_when_nobody_can_leave():
    risk = true_risk_matrix(np.full((2, MAX_SESSIONS), -60.0), planned_length_pmf(MAX_SESSIONS))
    assert np.allclose(risk, 0.0)


def test_planned_length_distribution():
    pmf = planned_length_pmf(MAX_SESSIONS)
    assert pmf.sum() == pytest.approx(1.0)
    assert (pmf[:2] == 0).all() and (pmf[2:] > 0).all()
    assert 7.0 < (np.arange(len(pmf)) * pmf).sum() < 11.0


@pytest.mark.parametrize("target", [0.05, 0.25, 0.6, 0.95])
def test_intercept_hits_the_target_expected_rate(target):
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, size=(500, MAX_SESSIONS))
    lengths = rng.integers(2, MAX_SESSIONS + 1, size=500)
    b0 = calibrate_intercept(base, lengths, target)
    assert expected_dropout(base + b0, lengths) == pytest.approx(target, abs=1e-9)


def test_effects_zero_make_risk_depend_only_on_age_clinic_and_session():
    c = simulate_cohort(SimulationConfig(n_clients=300, seed=9, alliance_effect=0, outcome_effect=0))
    t = c.truth.merge(c.episodes[["client_id", "therapist_id", "age"]], on="client_id")
    spread = t.groupby(["therapist_id", "age", "session_number"])["true_risk"].agg(lambda x: x.max() - x.min())
    assert spread.max() == 0.0


# ------------------------------------------------------------------ config validation


@pytest.mark.parametrize(
    "bad",
    [
        {"n_clients": 0},
        {"n_clients": 10, "dropout_rate": 0.0},
        {"n_clients": 10, "dropout_rate": 1.0},
        {"n_clients": 10, "outcome": "gad7"},
        {"n_clients": 10, "alliance": "hama"},
        {"n_clients": 10, "n_clinics": 0},
        {"n_clients": 10, "alliance_effect": -0.1},
        {"n_clients": 10, "outcome_effect": -1},
        {"n_clients": 10, "ongoing_fraction": 1.0},
        {"n_clients": 10, "ongoing_fraction": -0.1},
        {"n_clients": 10, "clinics": 3},  # extra fields are rejected, not ignored
    ],
)
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValidationError):
        SimulationConfig(**bad)


def test_config_is_frozen_and_has_documented_defaults():
    config = SimulationConfig(n_clients=5)
    assert (config.seed, config.dropout_rate, config.outcome, config.alliance) == (0, 0.25, "ors", "srs")
    assert (config.n_clinics, config.alliance_effect, config.outcome_effect) == (5, 1.0, 1.0)
    assert (config.ongoing_fraction, config.start_date, config.intake_span_days) == (
        0.05,
        datetime.date(2023, 1, 2),
        730,
    )
    with pytest.raises(ValidationError):
        config.seed = 3


# ------------------------------------------------------------------ no signal


@pytest.fixture(scope="module")
def no_signal_rows(cohorts) -> pd.DataFrame:
    """Every attended session of the ended episodes with its true risk, scores and eventual outcome."""
    return _session_rows(cohorts.simulate(4000, seed=11, no_signal=True))


def _session_rows(c: Cohort) -> pd.DataFrame:
    """Sessions of ended episodes with true risk, label, and each score rescaled to [0, 1] (``<column>_01``)."""
    ended = c.episodes[c.episodes["status"] != "ongoing"]
    label = (ended.set_index("client_id")["status"] == "dropout").astype(int).rename("label")
    rows = c.truth.merge(c.sessions, on=["client_id", "session_number"]).join(label, on="client_id", how="inner")
    for column in ("ors", "srs", "missed_since_last"):
        values = rows[column].astype(float)
        rows[f"{column}_01"] = (values - values.min()) / (values.max() - values.min())
    return rows.rename(columns={"session_number": "landmark"})


def test_no_signal_true_risk_depends_on_the_session_number_only(no_signal_rows):
    rows = no_signal_rows
    assert (rows.groupby("landmark")["true_risk"].agg(lambda x: x.max() - x.min()) == 0).all()
    landmarks, _ = evaluable_landmarks(rows, min_class_clients=10)
    assert len(landmarks) >= 6
    for k in landmarks:
        at_k = rows[rows["landmark"] == k]
        assert roc_auc(at_k["label"].to_numpy(), at_k["true_risk"].to_numpy()) == 0.5, k
    assert within_landmark_auc(rows, "true_risk", n_resamples=50).auc == 0.5
    # The session-number hazard remains: fewer of those still attending leave, session after session.
    rate = rows[rows["landmark"] <= 6].groupby("landmark")["label"].mean()
    assert rate.is_monotonic_decreasing and rate.iloc[0] > rate.iloc[-1] + 0.1
    true_risk = rows[rows["landmark"] <= 6].groupby("landmark")["true_risk"].first()
    assert true_risk.is_monotonic_decreasing


def test_no_signal_scores_and_missed_appointments_carry_no_information(no_signal_rows):
    for column in ("ors", "srs", "missed_since_last"):
        lo, hi = within_landmark_auc(no_signal_rows, f"{column}_01", n_resamples=200).ci
        assert lo < 0.5 < hi, column


def test_no_signal_refuses_named_effects():
    with pytest.raises(ValidationError, match="no_signal"):
        SimulationConfig(n_clients=10, no_signal=True, alliance_effect=1.0)
    config = SimulationConfig(n_clients=10, no_signal=True, outcome_effect=0)
    assert config.hazard_effects() == (0.0, 0.0, False)
    assert SimulationConfig(n_clients=10).hazard_effects() == (1.0, 1.0, True)


def test_the_same_check_finds_the_signal_of_a_default_cohort(cohorts):
    rows = _session_rows(cohorts.simulate(4000, seed=11))
    assert within_landmark_auc(rows, "true_risk", n_resamples=50).auc > 0.6
    for column in ("srs", "missed_since_last"):
        lo, hi = within_landmark_auc(rows, f"{column}_01", n_resamples=200).ci
        assert not lo < 0.5 < hi, column


def test_intake_shift_makes_outcome_scores_more_severe_and_leaves_the_rest_alone():
    base = simulate_cohort(SimulationConfig(n_clients=2000, seed=3))
    shifted = simulate_cohort(SimulationConfig(n_clients=2000, seed=3, intake_shift=1.0))
    assert shifted.episodes.equals(base.episodes) and shifted.truth.equals(base.truth)
    intake = {
        name: c.sessions.loc[c.sessions["session_number"] == 1, "ors"].mean()
        for name, c in (("b", base), ("s", shifted))
    }
    assert 5.0 < intake["b"] - intake["s"] < 8.0  # ORS: higher is better, SD 7 (clipped at the scale's ends)
    assert shifted.sessions["srs"].equals(base.sessions["srs"])
    with pytest.raises(ValidationError):
        SimulationConfig(n_clients=10, intake_shift=4.0)
