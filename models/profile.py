"""The training data's reference profile: what monitoring compares a clinic's new data with.

Written at training beside the scorer artifact (``artifacts/scorer/profile.json``) and read by
serving with it. Aggregates only, never a client's row: for each instrument, the decile cut
points and the share of values between them at intake (session 1) and at each landmark
session, with the share missing; the same for the days between sessions and for the
calibrated risks the model gives the training rows. A histogram needs at least
``MIN_VALUES`` values (fewer would let a cut point be one client's score): with fewer only
its count and missing share are kept.

``profile.json``::

    {"format": "dropout-risk-profile", "version": 1, "clients": n, "max_landmark": K,
     "instruments": {key: {"intake": Histogram, "sessions": {"1": Histogram, ..., "K": Histogram}}},
     "spacing": Histogram, "risk": Histogram}

    Histogram = {"edges": [cut points, increasing], "proportions": [len(edges) + 1 shares],
                 "n": values given, "missing_rate": share of rows without a value}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dropout_risk.features.spec import FeatureSpec

FORMAT = "dropout-risk-profile"
VERSION = 1
PROFILE_JSON = "profile.json"
MIN_VALUES = 50
QUANTILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True)
class Histogram:
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    n: int
    missing_rate: float

    @property
    def has_bins(self) -> bool:
        return len(self.proportions) > 1

    def counts(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` (finite ones) fall in each bin: below the first cut point, between, above."""
        finite = values[np.isfinite(values)]
        return np.bincount(
            np.searchsorted(np.asarray(self.edges), finite, side="right"), minlength=len(self.proportions)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "proportions": list(self.proportions),
            "n": self.n,
            "missing_rate": self.missing_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        return cls(
            tuple(float(v) for v in data["edges"]),
            tuple(float(v) for v in data["proportions"]),
            int(data["n"]),
            float(data["missing_rate"]),
        )


def histogram(values: np.ndarray) -> Histogram:
    """Decile cut points of the finite ``values`` and the share in each bin (ties merge bins)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    missing = float(1 - finite.size / values.size) if values.size else 0.0
    if finite.size < MIN_VALUES:
        return Histogram((), (1.0,), int(finite.size), missing)
    edges = np.unique(np.quantile(finite, QUANTILES))
    shape = Histogram(tuple(float(e) for e in edges), tuple(0.0 for _ in range(edges.size + 1)), 0, missing)
    shares = shape.counts(finite) / finite.size
    return Histogram(shape.edges, tuple(float(s) for s in shares), int(finite.size), missing)


@dataclass(frozen=True)
class InstrumentProfile:
    intake: Histogram
    sessions: dict[int, Histogram] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceProfile:
    clients: int
    max_landmark: int
    instruments: dict[str, InstrumentProfile]
    spacing: Histogram
    risk: Histogram

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "clients": self.clients,
            "max_landmark": self.max_landmark,
            "instruments": {
                key: {
                    "intake": p.intake.to_dict(),
                    "sessions": {str(k): h.to_dict() for k, h in sorted(p.sessions.items())},
                }
                for key, p in self.instruments.items()
            },
            "spacing": self.spacing.to_dict(),
            "risk": self.risk.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"{PROFILE_JSON} is not a version {VERSION} dropout-risk profile")
        instruments = {
            str(key): InstrumentProfile(
                Histogram.from_dict(p["intake"]),
                {int(k): Histogram.from_dict(h) for k, h in p["sessions"].items()},
            )
            for key, p in data["instruments"].items()
        }
        return cls(
            int(data["clients"]),
            int(data["max_landmark"]),
            instruments,
            Histogram.from_dict(data["spacing"]),
            Histogram.from_dict(data["risk"]),
        )


def session_spacing(sessions: pd.DataFrame) -> np.ndarray:
    """Days since each client's previous session (sessions sorted by client and number; first sessions left out)."""
    dates = pd.to_datetime(sessions["session_date"]).to_numpy(dtype="datetime64[D]").astype(np.int64)
    same = sessions["client_id"].to_numpy()[1:] == sessions["client_id"].to_numpy()[:-1]
    return np.diff(dates).astype(float)[same]


def fit_profile(sessions: pd.DataFrame, spec: FeatureSpec, risks: np.ndarray) -> ReferenceProfile:
    """The profile of validated training ``sessions`` and the model's calibrated ``risks`` on its landmark rows."""
    ordered = sessions.sort_values(["client_id", "session_number"], kind="stable")
    number = ordered["session_number"].to_numpy()
    instruments = {}
    for instrument in spec.instruments:
        values = pd.to_numeric(ordered[instrument.key], errors="coerce").to_numpy(dtype=float)
        by_session = {k: histogram(values[number == k]) for k in range(1, spec.max_landmark + 1)}
        instruments[instrument.key] = InstrumentProfile(by_session[1], by_session)
    return ReferenceProfile(
        clients=int(ordered["client_id"].nunique()),
        max_landmark=spec.max_landmark,
        instruments=instruments,
        spacing=histogram(session_spacing(ordered)),
        risk=histogram(np.asarray(risks, dtype=float)),
    )


def write_profile(profile: ReferenceProfile, directory: Path) -> Path:
    path = directory / PROFILE_JSON
    path.write_text(json.dumps(profile.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
    return path


def read_profile(directory: Path) -> ReferenceProfile | None:
    """The profile stored with a model, or None for a model trained before profiles were written."""
    path = directory / PROFILE_JSON
    if not path.is_file():
        return None
    return ReferenceProfile.from_dict(json.loads(path.read_text(encoding="utf-8")))
