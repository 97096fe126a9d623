"""Landmark features: one row per (client, attended session k <= max_landmark).

The row for session k describes the client as known right after session k and
uses ONLY that client's sessions 1..k (docs/domain.md section 5): every
feature is a running ("so far") quantity, computed over the whole table at once
with cumulative sums, running maxima of row positions (a per-client forward
fill) and group-wise cumulative ops on rows sorted by client and session. There
is no per-client Python code, so a million sessions take seconds.

Conventions
- Scores are first normalised so that higher is better (``Instrument.normalise``:
  lower-is-better scales are reflected, differences keep their size). All
  outcome and alliance features are in those units.
- A missing score is never imputed: "current" is the last *observed* score, and
  ``*_sessions_since_obs`` says how stale it is. Every feature is NaN until it can
  be computed; flags are float 1.0 / 0.0 / NaN.
- Reliable-change comparisons allow 1e-9 for float rounding: scores are marked
  in tenths, and 32.3 - 31.3 is a hair below 1 in floating point, yet it is the
  drop of 1 that PCOMS flags.
- ``K_dist_cutoff`` = normalised current score - normalised cutoff. Positive is
  always the healthy side. At exactly 0 the sides follow
  ``Instrument.is_clinical``: a higher-is-better scale is healthy there (ORS 25 is
  not below 25) and a lower-is-better one clinical (PHQ-9 10 is caseness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry
from dropout_risk.features.spec import (
    ALLIANCE_SUFFIXES,
    ATTENDANCE_FEATURES,
    LANDMARK,
    OUTCOME_SUFFIXES,
    FeatureSpec,
    infer_spec,
)
from dropout_risk.features.trajectories import ExpectedTrajectories, fit_expected_trajectories

ROUNDING_TOLERANCE = 1e-9
NS_PER_DAY = 86_400 * 10**9
LABELS = {"dropout": 1.0, "completed": 0.0}
OPTIONAL_EPISODE_IDS = ("clinic_id", "therapist_id")


def build_features(
    sessions: pd.DataFrame,
    episodes: pd.DataFrame,
    spec: FeatureSpec | None = None,
    trajectories: ExpectedTrajectories | None = None,
    *,
    registry: InstrumentRegistry | None = None,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """The landmark feature frame for validated ``sessions`` and ``episodes``.

    ``spec``: when None it is inferred from these data (``registry`` and ``config``
    default to ``default_registry()`` and ``FeatureConfig()``; both are used only
    for that inference).
    ``trajectories``: when None they are fitted on these same sessions. That is a
    convenience for exploration only: a training run fits them on the training
    clients alone and stores them (and the spec) with the model, and scoring
    passes both in, so no row is judged against a curve that saw its own client.

    Returns one row per (client, attended session k <= spec.max_landmark), sorted
    by client_id then landmark, with a RangeIndex and the columns
    ``client_id, landmark, session_date, [clinic_id], [therapist_id], status, label``
    (clinic/therapist only when episodes have them; label is 1.0 dropout, 0.0
    completed, NaN ongoing or unknown) followed by ``spec.feature_columns()``
    without ``landmark``. A spec column the data lack is all-NaN.
    """
    if spec is None:
        spec = infer_spec(sessions, episodes, registry or default_registry(), config or FeatureConfig())
    if trajectories is None:
        trajectories = fit_expected_trajectories(sessions, spec)

    frame, clients, client_ids = _landmark_sessions(sessions, spec.max_landmark)
    session = frame["session_number"].to_numpy(dtype=np.int64)

    columns: dict[str, object] = {
        "client_id": frame["client_id"],
        LANDMARK: session,
        "session_date": frame["session_date"],
    }
    columns.update(_episode_columns(episodes, client_ids, clients.codes, spec))
    date_ns = frame["session_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    columns.update(
        _session_features(
            session,
            date_ns,
            _float_column(frame, "missed_since_last"),
            {i.key: _float_column(frame, i.key) for i in spec.instruments},
            clients,
            spec,
            trajectories,
        )
    )

    ids = [
        "client_id",
        LANDMARK,
        "session_date",
        *(c for c in OPTIONAL_EPISODE_IDS if c in episodes.columns),
        "status",
        "label",
    ]
    # Every Series here already carries the sorted RangeIndex, so arrays and Series line up.
    return pd.DataFrame({name: columns[name] for name in ids + spec.feature_columns()[1:]})


def _session_features(
    session: np.ndarray,
    date_ns: np.ndarray,
    missed: np.ndarray,
    raw: dict[str, np.ndarray],
    clients: _Clients,
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


# --- one client, no pandas: the service's path ------------------------------------------------


@dataclass(frozen=True)
class ClientHistory:
    """One client's attended sessions as arrays, numbered 1..n in order (validated by the caller).

    ``scores`` maps instrument keys to float arrays (NaN = not given); instruments
    the spec does not use are ignored, spec instruments absent here are all-NaN.
    """

    session_number: np.ndarray
    date_ns: np.ndarray
    missed: np.ndarray
    scores: dict[str, np.ndarray]
    covariates: dict[str, object]


def _numeric_covariate(value: object) -> float:
    """What ``pd.to_numeric(errors="coerce")`` makes of one value."""
    if value is None or isinstance(value, str) and not value.strip():
        return np.nan
    try:
        return float(pd.to_numeric(value))
    except (TypeError, ValueError):
        return np.nan


def client_features(history: ClientHistory, spec: FeatureSpec, trajectories: ExpectedTrajectories) -> dict:
    """The feature columns of ``spec.feature_columns()`` for landmarks 1..min(n, max_landmark).

    Equal to ``build_features``'s rows for the same client (a test holds them to
    exact equality); categorical covariates come as float level codes (NaN for
    missing or unseen levels) instead of a Categorical. Built for the service:
    one client in well under a millisecond.
    """
    keep = history.session_number <= spec.max_landmark
    session = history.session_number[keep].astype(np.int64)
    n = len(session)
    clients = _Clients(codes=np.zeros(n, dtype=np.int64), first_row=np.zeros(n, dtype=np.int64))
    raw = {
        i.key: np.asarray(history.scores[i.key], dtype=float)[keep] if i.key in history.scores else np.full(n, np.nan)
        for i in spec.instruments
    }
    columns: dict[str, np.ndarray] = {LANDMARK: session.astype(float)}
    columns.update(
        _session_features(session, history.date_ns[keep], history.missed[keep], raw, clients, spec, trajectories)
    )
    for name in spec.numeric_covariates:
        columns[name] = np.full(n, _numeric_covariate(history.covariates.get(name)))
    for name, levels in spec.categorical_covariates.items():
        value = history.covariates.get(name)
        code = levels.index(str(value)) if value is not None and str(value) in levels else np.nan
        columns[name] = np.full(n, float(code))
    return {name: np.asarray(columns[name], dtype=float) for name in spec.feature_columns()}


# --- the sorted session table and per-client bookkeeping ----------------------------------


@dataclass(frozen=True)
class _Clients:
    """Client blocks of a table sorted by client then session.

    ``codes`` is the client's index in the sorted unique ids, ``first_row`` the
    position of the client's first row, both per row.
    """

    codes: np.ndarray
    first_row: np.ndarray

    @classmethod
    def from_sorted_codes(cls, codes: np.ndarray) -> _Clients:
        rows = np.arange(len(codes))
        starts = np.ones(len(codes), dtype=bool)
        starts[1:] = codes[1:] != codes[:-1]
        first_row = np.maximum.accumulate(np.where(starts, rows, 0))
        return cls(codes, first_row)

    def last_position(self, mask: np.ndarray) -> np.ndarray:
        """Per row: position of the latest row so far (this one included) where mask holds, -1 if none.

        A running maximum of positions is a forward fill; checking it against the
        client's first row keeps it from reaching into the previous client.
        """
        latest = np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))
        return np.where(latest >= self.first_row, latest, -1)

    def previous_position(self, mask: np.ndarray) -> np.ndarray:
        """Per row: position of the latest row strictly before this one where mask holds, -1 if none."""
        before = np.concatenate([[-1], self.last_position(mask)[:-1]]).astype(np.int64)
        # At a client's first row, `before` points into the previous client: below first_row.
        return np.where(before >= self.first_row, before, -1)

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per row: how many rows so far (this one included) satisfy mask. Integer, so exact."""
        running = np.cumsum(mask, dtype=np.int64)
        return running - (running[self.first_row] - mask[self.first_row])

    def _grid(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(block, position) of each row in a clients x sessions grid, and the grid's shape."""
        rows = np.arange(len(self.codes))
        block = np.cumsum(rows == self.first_row) - 1
        position = rows - self.first_row
        shape = (int(block[-1]) + 1, int(position.max()) + 1) if len(rows) else (0, 0)
        return block, position, shape

    def _accumulate(self, values: np.ndarray, ufunc: np.ufunc, pad: float) -> np.ndarray:
        # Lay each client's rows out along one grid row and accumulate along it: each client's
        # running value is summed in session order from its own rows only, exactly as a per-client
        # loop would (a global cumsum minus an offset would lose precision on large tables).
        if len(values) == 0 or self.first_row[-1] == 0:  # one client (the service's case): no grid needed
            return ufunc.accumulate(values)
        block, position, shape = self._grid()
        grid = np.full(shape, pad)
        grid[block, position] = values
        return ufunc.accumulate(grid, axis=1)[block, position]

    def cumsum(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Running sums per client (NaN-free input)."""
        return {name: self._accumulate(np.asarray(v, dtype=float), np.add, 0.0) for name, v in values.items()}

    def cummin(self, values: np.ndarray) -> np.ndarray:
        return self._accumulate(np.asarray(values, dtype=float), np.minimum, np.inf)


def _take(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """values[position] as float, NaN where position is -1."""
    found = position >= 0
    if not found.any():
        return np.full(len(position), np.nan)
    return np.where(found, values[np.where(found, position, 0)].astype(float), np.nan)


def _flag(condition: np.ndarray, known: np.ndarray) -> np.ndarray:
    return np.where(known, condition.astype(float), np.nan)


def _landmark_sessions(sessions: pd.DataFrame, max_landmark: int) -> tuple[pd.DataFrame, _Clients, pd.Index]:
    """Sessions 1..max_landmark sorted by client and session, the client blocks, the sorted unique ids.

    Later sessions are dropped first: no row may depend on them.
    """
    codes, client_ids = pd.factorize(sessions["client_id"], sort=True)
    if (codes < 0).any():
        raise ValueError("sessions: client_id is missing in some rows")
    number = sessions["session_number"]
    if number.isna().any():
        raise ValueError("sessions: session_number is missing in some rows")
    number = number.to_numpy(dtype=np.int64)
    kept = np.flatnonzero(number <= max_landmark)
    order = kept[np.lexsort((number[kept], codes[kept]))]
    codes, number = codes[order], number[order]
    repeated = (codes[1:] == codes[:-1]) & (number[1:] == number[:-1])
    if repeated.any():
        raise ValueError("sessions: a client has the same session_number twice")
    frame = sessions.take(order).reset_index(drop=True)
    return frame, _Clients.from_sorted_codes(codes), client_ids


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=float, na_value=np.nan)


def _normalised(instrument: Instrument, raw: np.ndarray) -> np.ndarray:
    return np.asarray(instrument.normalise(raw), dtype=float)


# --- episode columns: ids, status, label, covariates ---------------------------------------


def _episode_columns(
    episodes: pd.DataFrame, client_ids: pd.Index, codes: np.ndarray, spec: FeatureSpec
) -> dict[str, object]:
    """Per-row episode values, looked up once per client then spread over its rows."""
    if episodes["client_id"].duplicated().any():
        raise ValueError("episodes: a client has more than one episode row")
    row_of_client = pd.Index(episodes["client_id"]).get_indexer(client_ids)
    row = row_of_client[codes]  # -1: client has sessions but no episode -> NaN everywhere

    out: dict[str, object] = {}
    for name in OPTIONAL_EPISODE_IDS:
        if name in episodes.columns:
            out[name] = _take_episode(episodes[name], row)
    out["status"] = _take_episode(episodes["status"], row)
    out["label"] = _take(_labels(episodes["status"]), row)
    for name in spec.numeric_covariates:
        values = (
            pd.to_numeric(episodes[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if name in episodes.columns
            else np.full(len(episodes), np.nan)
        )
        out[name] = _take(values, row)
    for name, levels in spec.categorical_covariates.items():
        level_codes = _level_codes(episodes[name], levels) if name in episodes.columns else np.full(len(episodes), -1)
        # With no episode rows at all, every row is -1 already (and there is nothing to index).
        per_row = np.where(row >= 0, level_codes[np.maximum(row, 0)], -1) if len(episodes) else row
        out[name] = pd.Categorical.from_codes(per_row, categories=pd.Index(levels, dtype=str))
    return out


def _take_episode(column: pd.Series, row: np.ndarray) -> pd.Series:
    return pd.Series(pd.api.extensions.take(column.array, row, allow_fill=True), name=column.name)


def _labels(status: pd.Series) -> np.ndarray:
    text = status.astype("string")
    label = np.full(len(status), np.nan)
    for value, code in LABELS.items():
        label[(text == value).to_numpy(dtype=bool, na_value=False)] = code
    return label


def _level_codes(column: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """Index of each value in the spec's levels; -1 for missing or unseen (-> NaN category)."""
    known = column.notna().to_numpy()
    codes = pd.Index(levels, dtype=str).get_indexer(column.astype(str))
    return np.where(known, codes, -1)


# --- attendance ----------------------------------------------------------------------------


def _attendance_features(
    date_ns: np.ndarray, missed: np.ndarray, clients: _Clients, session: np.ndarray
) -> dict[str, np.ndarray]:
    days = (date_ns - date_ns[clients.first_row]) / NS_PER_DAY
    previous_row = clients.previous_position(np.ones(len(session), dtype=bool))
    known = ~np.isnan(missed)
    missed_total = clients.cumsum({"m": np.where(known, missed, 0.0)})["m"]
    steps = (session - 1).astype(float)
    features = {
        "days_in_treatment": days,
        "mean_gap_days": np.divide(days, steps, out=np.full(len(days), np.nan), where=steps > 0),
        "last_gap_days": days - _take(days, previous_row),
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


def _running(score: np.ndarray, clients: _Clients, session: np.ndarray) -> _Running:
    observed = ~np.isnan(score)
    n = clients.count(observed)
    last = clients.last_position(observed)
    first = clients.last_position(observed & (n == 1))
    previous_score = _take(score, clients.previous_position(observed))
    step = np.where(observed, score - previous_score, np.nan)
    x = np.where(observed, session.astype(float), 0.0)
    y = np.where(observed, score, 0.0)
    sums = clients.cumsum({"sx": x, "sy": y, "sxy": x * y, "sxx": x * x})
    return _Running(
        n=n,
        first=_take(score, first),
        current=_take(score, last),
        current_session=_take(session, last),
        change_last=_take(step, last),
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
    clients: _Clients,
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
        improved = _flag(change_intake >= rc - ROUNDING_TOLERANCE, known_change)
        deteriorated = _flag(change_intake <= -rc + ROUNDING_TOLERANCE, known_change)
    if instrument.cutoff is None:
        dist_cutoff = np.full(len(score), np.nan)
    else:
        dist_cutoff = run.current - float(instrument.normalise(instrument.cutoff))
    if instrument.key in trajectories:
        expected, resid_sd = trajectories.expected(instrument.key, run.first, run.current_session)
    else:  # a spec instrument the stored curves do not cover: no expectation to compare against
        expected = resid_sd = np.full(len(score), np.nan)
    deviation = run.current - expected
    off_track = _flag(deviation < -off_track_z * resid_sd, ~np.isnan(deviation) & ~np.isnan(resid_sd))
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
    instrument: Instrument, raw: np.ndarray, clients: _Clients, session: np.ndarray
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
        "any_drop": _flag(clients.count(threshold_hit & ~np.isnan(run.drop_at_row)) > 0, run.n >= 2),
    }
    assert tuple(values) == ALLIANCE_SUFFIXES
    return {f"{instrument.key}_{suffix}": v for suffix, v in values.items()}
