"""Expected treatment response: where a client's outcome score should be by session k.

The established feedback systems (OQ-Analyst, PCOMS; docs/domain.md section 3)
judge progress against the course expected *from the intake score*, not against
zero change: a client who starts very distressed is expected to move more. We
fit the same idea from the training data, per outcome instrument and per
session k = 1..max_landmark, as an ordinary least-squares line

    normalised score at session k  ~  intercept_k + slope_k * normalised intake score

with its residual SD, over the clients observed at k ("intake" is the client's
first observed score). A client is *off track* when the score falls more than
``off_track_z`` residual SDs below the line.

Training fits these on the training clients only and stores them with the model,
so test and scoring rows are compared against curves that never saw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.features.instruments import Instrument
from dropout_risk.features.spec import FeatureSpec

MIN_CLIENTS = 5
TRAJECTORIES_FORMAT = 1


@dataclass(frozen=True)
class Curve:
    """One instrument's expected course: entry k-1 holds session k's line (normalised units)."""

    intercept: tuple[float, ...]
    slope: tuple[float, ...]
    resid_sd: tuple[float, ...]
    # Clients observed at each k in the fitting data; informative only (model card), may be empty.
    n_clients: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("intercept", "slope", "resid_sd"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "n_clients", tuple(int(v) for v in self.n_clients))
        if not len(self.intercept) == len(self.slope) == len(self.resid_sd) >= 1:
            raise ValueError("a trajectory curve needs intercept, slope and resid_sd of the same, non-zero length")

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": [_json_float(v) for v in self.intercept],
            "slope": [_json_float(v) for v in self.slope],
            "resid_sd": [_json_float(v) for v in self.resid_sd],
            "n_clients": list(self.n_clients),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Curve:
        return cls(
            intercept=tuple(_from_json_float(v) for v in data["intercept"]),
            slope=tuple(_from_json_float(v) for v in data["slope"]),
            resid_sd=tuple(_from_json_float(v) for v in data["resid_sd"]),
            n_clients=tuple(data.get("n_clients", ())),
        )


@dataclass(frozen=True)
class ExpectedTrajectories:
    """Expected-response curves per outcome instrument key."""

    curves: dict[str, Curve] = field(default_factory=dict)

    def __contains__(self, key: object) -> bool:
        return key in self.curves

    def expected(self, key: str, intake: np.ndarray, session_number: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(expected normalised score, residual SD) for each (intake, session) pair.

        Sessions past the last fitted k use the last k's line (the curve is held
        flat rather than extrapolated); a NaN session or intake gives NaN.
        """
        curve = self.curves[key]
        intake = np.asarray(intake, dtype=float)
        session = np.asarray(session_number, dtype=float)
        known = np.isfinite(session)
        index = np.clip(np.where(known, session, 1.0), 1, len(curve.intercept)).astype(np.int64) - 1
        mean = np.asarray(curve.intercept)[index] + np.asarray(curve.slope)[index] * intake
        sd = np.asarray(curve.resid_sd)[index]
        return np.where(known, mean, np.nan), np.where(known, sd, np.nan)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN stored as null)."""
        return {
            "format": TRAJECTORIES_FORMAT,
            "curves": {key: curve.to_dict() for key, curve in self.curves.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedTrajectories:
        fmt = data.get("format", TRAJECTORIES_FORMAT)
        if fmt != TRAJECTORIES_FORMAT:
            raise ValueError(f"trajectories format {fmt} is not supported (expected {TRAJECTORIES_FORMAT})")
        return cls({key: Curve.from_dict(curve) for key, curve in data["curves"].items()})


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json_float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


# --- fitting ------------------------------------------------------------------------------


def fit_expected_trajectories(sessions: pd.DataFrame, spec: FeatureSpec) -> ExpectedTrajectories:
    """Fit one OLS line per (outcome instrument, session k <= spec.max_landmark).

    A k with fewer than ``MIN_CLIENTS`` observed clients (or no spread in their
    intake scores) reuses the nearest fitted k below it; where there is none
    below (k = 1 too sparse) the nearest fitted k above is used, and an
    instrument with no fitted k at all gets NaN curves (its expected-deviation
    features are then NaN). At k = 1 every observed client's intake *is* its
    session-1 score, so that line is the identity with zero residual SD.
    """
    sums = trajectory_sums(sessions, spec.outcome_instruments, spec.max_landmark)
    return ExpectedTrajectories(
        {
            i.key: curve_from_sums(sums[i.key], spec.max_landmark)
            if i.key in sums
            else _unfitted_curve(spec.max_landmark)
            for i in spec.outcome_instruments
        }
    )


def trajectory_sums(
    sessions: pd.DataFrame, instruments: Iterable[Instrument], max_landmark: int
) -> dict[str, pd.DataFrame]:
    """Per instrument with a column in ``sessions``: the per-k sums ``curve_from_sums`` fits a curve from.

    The selection the fit uses: sessions <= max_landmark in client and session
    order, normalised scores, the intake being a client's first observed score,
    observed scores only. The Spark engine computes these per bucket of clients
    and merges them, so both engines fit from this one definition.
    """
    frame = _landmark_sessions(sessions, max_landmark)
    clients = pd.factorize(frame["client_id"])[0]
    session = frame["session_number"].to_numpy(dtype=np.int64)
    return {i.key: _instrument_sums(i, frame[i.key], clients, session) for i in instruments if i.key in frame.columns}


def _landmark_sessions(sessions: pd.DataFrame, max_landmark: int) -> pd.DataFrame:
    """Sessions up to max_landmark, sorted by client then session (first observed = intake)."""
    kept = sessions[sessions["session_number"] <= max_landmark]
    return kept.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)


def _unfitted_curve(max_landmark: int) -> Curve:
    nan = (float("nan"),) * max_landmark
    return Curve(nan, nan, nan, (0,) * max_landmark)


def _instrument_sums(instrument: Instrument, raw: pd.Series, clients: np.ndarray, session: np.ndarray) -> pd.DataFrame:
    score = np.asarray(instrument.normalise(raw.to_numpy(dtype=float, na_value=np.nan)), dtype=float)
    intake = pd.Series(score).groupby(clients, sort=False).transform("first").to_numpy()
    observed = ~np.isnan(score)
    return _sums_by_session(session[observed], intake[observed], score[observed])


def curve_from_sums(sums: pd.DataFrame, max_landmark: int) -> Curve:
    """The curve from per-k sums (columns n, mx, my, sxx, sxy, syy about each k's means, index k).

    Shared with the Spark engine, which merges ``trajectory_sums`` across buckets of clients.
    """
    stats = _lines(sums, max_landmark)
    fitted = (stats["n"] >= MIN_CLIENTS) & (stats["sxx"] > 0)
    # Borrow the nearest fitted k below; only a sparse start borrows from above.
    source = stats.index.to_series().where(fitted).ffill().bfill()
    if source.isna().all():
        return _unfitted_curve(max_landmark)
    donor = stats.loc[source.astype(np.int64).to_numpy()]
    return Curve(
        intercept=tuple(donor["intercept"]),
        slope=tuple(donor["slope"]),
        resid_sd=tuple(donor["resid_sd"]),
        n_clients=tuple(stats["n"].astype(np.int64)),
    )


def _sums_by_session(session: np.ndarray, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per session k: n, the means and the sums of squares and products about them.

    Sums are taken about each k's means: at k = 1 (x == y) that makes the fit
    exactly slope 1, intercept 0, residual SD 0 rather than rounding noise.
    """
    data = pd.DataFrame({"k": session, "x": x, "y": y})
    means = data.groupby("k")[["x", "y"]].transform("mean")
    data["dx"] = data["x"] - means["x"]
    data["dy"] = data["y"] - means["y"]
    data["dxx"] = data["dx"] * data["dx"]
    data["dxy"] = data["dx"] * data["dy"]
    data["dyy"] = data["dy"] * data["dy"]
    return data.groupby("k").agg(
        n=("x", "size"), mx=("x", "mean"), my=("y", "mean"), sxx=("dxx", "sum"), sxy=("dxy", "sum"), syy=("dyy", "sum")
    )


def _lines(sums: pd.DataFrame, max_landmark: int) -> pd.DataFrame:
    """Per k = 1..max_landmark: the OLS line of y on x and its residual SD from the sums."""
    sums = sums.reindex(pd.RangeIndex(1, max_landmark + 1, name="k"))
    sums["n"] = sums["n"].fillna(0)
    sxx = sums["sxx"].where(sums["sxx"] > 0)
    sums["slope"] = sums["sxy"] / sxx
    sums["intercept"] = sums["my"] - sums["slope"] * sums["mx"]
    ssr = (sums["syy"] - sums["slope"] * sums["sxy"]).clip(lower=0)
    sums["resid_sd"] = np.sqrt(ssr / (sums["n"] - 2).where(sums["n"] > 2))
    sums["sxx"] = sums["sxx"].fillna(0)
    return sums
