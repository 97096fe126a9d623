"""The per-session features of attendance and of each outcome and alliance instrument.

One implementation for both paths: ``build_features`` (a whole table) and ``client_features`` (one
client, the service) call ``session_features`` with the rows laid out as ``ClientBlocks``. Scores are
normalised so that higher is better before anything is computed (see ``features.landmarks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dropout_risk.features.client_blocks import ClientBlocks, flag, take
from dropout_risk.features.instruments import Instrument
from dropout_risk.features.spec import ALLIANCE_SUFFIXES, ATTENDANCE_FEATURES, OUTCOME_SUFFIXES, FeatureSpec
from dropout_risk.features.trajectories import ExpectedTrajectories

# Scores are marked in tenths, and 32.3 - 31.3 is a hair below 1 in floating point, yet it is the
# drop of 1 that PCOMS flags: reliable-change comparisons allow this much for rounding.
ROUNDING_TOLERANCE = 1e-9
NS_PER_DAY = 86_400 * 10**9


def session_features(
    session: np.ndarray,
    date_ns: np.ndarray,
    missed: np.ndarray,
    raw: dict[str, np.ndarray],
    clients: ClientBlocks,
    spec: FeatureSpec,
    trajectories: ExpectedTrajectories,
) -> dict:
    """Every attendance, outcome and alliance feature: the one implementation both paths call."""
    columns = _attendance_features(date_ns, missed, clients, session)
    for instrument in spec.outcome_instruments:
        columns.update(
            _outcome_features(instrument, raw[instrument.key], clients, session, trajectories, spec.off_track_z)
        )
    for instrument in spec.alliance_instruments:
        columns.update(_alliance_features(instrument, raw[instrument.key], clients, session))
    return columns


def _normalised(instrument: Instrument, raw: np.ndarray) -> np.ndarray:
    return np.asarray(instrument.normalise(raw), dtype=float)


# --- attendance ----------------------------------------------------------------------------


def _attendance_features(
    date_ns: np.ndarray, missed: np.ndarray, clients: ClientBlocks, session: np.ndarray
) -> dict[str, np.ndarray]:
    days = (date_ns - date_ns[clients.first_row]) / NS_PER_DAY
    previous_row = clients.previous_position(np.ones(len(session), dtype=bool))
    known = ~np.isnan(missed)
    missed_total = clients.cumsum({"m": np.where(known, missed, 0.0)})["m"]
    steps = (session - 1).astype(float)
    features = {
        "days_in_treatment": days,
        "mean_gap_days": np.divide(days, steps, out=np.full(len(days), np.nan), where=steps > 0),
        "last_gap_days": days - take(days, previous_row),
        "missed_total": np.where(clients.count(known) > 0, missed_total, np.nan),
        "missed_last": missed,
    }
    assert tuple(features) == ATTENDANCE_FEATURES
    return features


# --- shared running statistics of one instrument -------------------------------------------


@dataclass(frozen=True)
class _Running:
    """Running quantities of one instrument's observed (non-NaN) scores, per row."""

    n: np.ndarray  # observations so far
    first: np.ndarray  # first observed score
    current: np.ndarray  # last observed score
    current_session: np.ndarray  # session number of that observation
    change_last: np.ndarray  # last minus previous observation
    drop_at_row: np.ndarray  # previous observation minus this row's score (NaN unless observed with a previous)
    sums: dict[str, np.ndarray]  # Sx, Sy, Sxy, Sxx over observed (session, score)


def _running(score: np.ndarray, clients: ClientBlocks, session: np.ndarray) -> _Running:
    observed = ~np.isnan(score)
    n = clients.count(observed)
    last = clients.last_position(observed)
    first = clients.last_position(observed & (n == 1))
    previous_score = take(score, clients.previous_position(observed))
    step = np.where(observed, score - previous_score, np.nan)
    x = np.where(observed, session.astype(float), 0.0)
    y = np.where(observed, score, 0.0)
    sums = clients.cumsum({"sx": x, "sy": y, "sxy": x * y, "sxx": x * x})
    return _Running(
        n=n,
        first=take(score, first),
        current=take(score, last),
        current_session=take(session, last),
        change_last=take(step, last),
        drop_at_row=-step,
        sums=sums,
    )


def _ols_slope(n: np.ndarray, sums: dict[str, np.ndarray]) -> np.ndarray:
    """Slope of score on session number from running sums; NaN with fewer than 2 points."""
    numerator = n * sums["sxy"] - sums["sx"] * sums["sy"]
    denominator = n * sums["sxx"] - sums["sx"] ** 2
    ok = (n >= 2) & (denominator > 0)  # distinct session numbers make it > 0 once n >= 2
    return np.divide(numerator, denominator, out=np.full(len(n), np.nan), where=ok)


# --- outcome ----------------------------------------------------------------------------------


def _outcome_features(
    instrument: Instrument,
    raw: np.ndarray,
    clients: ClientBlocks,
    session: np.ndarray,
    trajectories: ExpectedTrajectories,
    off_track_z: float,
) -> dict[str, np.ndarray]:
    score = _normalised(instrument, raw)
    run = _running(score, clients, session)
    change_intake = np.where(run.n >= 2, run.current - run.first, np.nan)
    known_change = ~np.isnan(change_intake)
    rc = instrument.reliable_change
    if rc is None:
        improved = deteriorated = np.full(len(score), np.nan)
    else:
        improved = flag(change_intake >= rc - ROUNDING_TOLERANCE, known_change)
        deteriorated = flag(change_intake <= -rc + ROUNDING_TOLERANCE, known_change)
    if instrument.cutoff is None:
        dist_cutoff = np.full(len(score), np.nan)
    else:
        dist_cutoff = run.current - float(instrument.normalise(instrument.cutoff))
    if instrument.key in trajectories:
        expected, resid_sd = trajectories.expected(instrument.key, run.first, run.current_session)
    else:  # a spec instrument the stored curves do not cover: no expectation to compare against
        expected = resid_sd = np.full(len(score), np.nan)
    deviation = run.current - expected
    off_track = flag(deviation < -off_track_z * resid_sd, ~np.isnan(deviation) & ~np.isnan(resid_sd))
    values = {
        "intake": run.first,
        "current": run.current,
        "sessions_since_obs": session - run.current_session,
        "change_intake": change_intake,
        "change_last": run.change_last,
        "slope": _ols_slope(run.n, run.sums),
        "reliable_improvement": improved,
        "reliable_deterioration": deteriorated,
        "dist_cutoff": dist_cutoff,
        "expected_dev": deviation,
        "off_track": off_track,
    }
    assert tuple(values) == OUTCOME_SUFFIXES
    return {f"{instrument.key}_{suffix}": v for suffix, v in values.items()}


# --- alliance -------------------------------------------------------------------------------


def _alliance_features(
    instrument: Instrument, raw: np.ndarray, clients: ClientBlocks, session: np.ndarray
) -> dict[str, np.ndarray]:
    score = _normalised(instrument, raw)
    run = _running(score, clients, session)
    observed = ~np.isnan(score)
    any_seen = run.n > 0
    running_min = clients.cummin(np.where(observed, score, np.inf))
    if instrument.cutoff is None:
        n_below = np.full(len(score), np.nan)
    else:
        clinical = observed & instrument.is_clinical(raw)
        n_below = np.where(any_seen, clients.count(clinical).astype(float), np.nan)
    rc = instrument.reliable_change
    threshold_hit = run.drop_at_row >= rc - ROUNDING_TOLERANCE if rc is not None else run.drop_at_row > 0
    values = {
        "current": run.current,
        "min": np.where(any_seen, running_min, np.nan),
        "mean": np.divide(run.sums["sy"], run.n, out=np.full(len(score), np.nan), where=any_seen),
        "change_first": np.where(run.n >= 2, run.current - run.first, np.nan),
        "change_last": run.change_last,
        "n_below_cutoff": n_below,
        "any_drop": flag(clients.count(threshold_hit & ~np.isnan(run.drop_at_row)) > 0, run.n >= 2),
    }
    assert tuple(values) == ALLIANCE_SUFFIXES
    return {f"{instrument.key}_{suffix}": v for suffix, v in values.items()}
