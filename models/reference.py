"""Contributions by concept, measured against the average client at the same session.

A model's per-feature contributions are measured against the average *training row*, so a client
at session 1 always "has" a large contribution from being at session 1, and an improving client
can read as "raises the risk" because clients at that session improve more on average. Clinicians
read a risk against clients at the same point in treatment: this module sums contributions by
concept (``features.concepts``) and subtracts, per session number, the average training client's
sum. What is left of each concept is how this client differs from that average client; the rest
(the model's bias, the session number's effect, the average client's concept sums and the Platt
intercept of the row's landmark) is the ``baseline``. Baseline plus the concept effects is the calibrated log-odds
exactly (with Platt calibration; with isotonic calibration, the uncalibrated log-odds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_risk.features.concepts import EXPLAINED, concept_of
from dropout_risk.features.spec import FeatureSpec


@dataclass(frozen=True)
class ConceptReference:
    """Per session number 1..max_landmark, the mean contribution of each explained concept in training."""

    means: dict[str, tuple[float, ...]]  # concept -> mean at landmark 1, 2, ..., max_landmark
    # numeric model column -> its mean observed value at each landmark (None: never observed there);
    # the reasons compare a client's own values with these before saying "lower than usual".
    values: dict[str, tuple[float | None, ...]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "means": {concept: list(values) for concept, values in self.means.items()},
            "values": {column: list(values) for column, values in self.values.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConceptReference:
        means = {str(concept): tuple(float(v) for v in values) for concept, values in data["means"].items()}
        values = {
            str(column): tuple(None if v is None else float(v) for v in by_landmark)
            for column, by_landmark in data["values"].items()
        }
        lengths = {len(v) for v in [*means.values(), *values.values()]}
        if set(means) != set(EXPLAINED) or len(lengths) != 1:
            raise ValueError("a concept reference needs the same number of sessions for every concept and value")
        return cls(means, values)

    def value_at(self, column: str, landmark: int) -> float | None:
        """The average training client's value of ``column`` at ``landmark`` (None if unknown)."""
        by_landmark = self.values.get(column)
        return None if by_landmark is None else by_landmark[landmark - 1]

    def at(self, landmark: np.ndarray) -> dict[str, np.ndarray]:
        """Each concept's reference for rows at ``landmark`` (1-based)."""
        index = np.asarray(landmark, dtype=np.intp) - 1
        return {concept: np.asarray(values)[index] for concept, values in self.means.items()}


@dataclass(frozen=True)
class ConceptEffects:
    """Per row: the baseline log-odds and each explained concept's difference from the average client."""

    baseline: np.ndarray  # (n,)
    effects: dict[str, np.ndarray]  # concept -> (n,)


def concept_sums(contributions: np.ndarray, columns: Sequence[str], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Per row, the contributions summed by concept (``session`` included)."""
    contributions = np.asarray(contributions, dtype=float)
    concepts = [concept_of(spec, c) for c in columns]
    return {
        concept: contributions[:, [j for j, c in enumerate(concepts) if c == concept]].sum(axis=1)
        for concept in ("session", *EXPLAINED)
    }


def fit_reference(
    contributions: np.ndarray,
    columns: Sequence[str],
    landmark: np.ndarray,
    spec: FeatureSpec,
    values: Mapping[str, np.ndarray],
) -> ConceptReference:
    """The average training row's concept sums and ``values`` at each session.

    A session with no training rows borrows the nearest session that has some.
    """
    sums = concept_sums(contributions, columns, spec)
    landmark = np.asarray(landmark, dtype=np.intp)
    present = sorted(set(landmark.tolist()))
    if not present:
        raise ValueError("no training rows to measure the average client on")
    nearest = [_nearest(present, session) for session in range(1, spec.max_landmark + 1)]
    means: dict[str, tuple[float, ...]] = {
        concept: tuple(float(sums[concept][landmark == k].mean()) for k in nearest) for concept in EXPLAINED
    }
    averages = {column: tuple(_observed_mean(v[landmark == k]) for k in nearest) for column, v in values.items()}
    return ConceptReference(means, averages)


def _nearest(present: list[int], session: int) -> int:
    return min(present, key=lambda k: (abs(k - session), k))


def _observed_mean(values: np.ndarray) -> float | None:
    observed = values[~np.isnan(values)]
    return float(observed.mean()) if len(observed) else None


def concept_effects(
    contributions: np.ndarray,
    bias: np.ndarray,
    columns: Sequence[str],
    landmark: np.ndarray,
    spec: FeatureSpec,
    reference: ConceptReference,
    intercept: float | np.ndarray = 0.0,
) -> ConceptEffects:
    """Split each row's log-odds into a baseline and the explained concepts' effects (they sum exactly).

    ``intercept``: what calibration adds to the log-odds beyond the scaled contributions (Platt's
    intercept at each row's landmark, or one number for every row).
    """
    sums = concept_sums(contributions, columns, spec)
    expected = reference.at(landmark)
    effects: dict[str, np.ndarray] = {concept: sums[concept] - expected[concept] for concept in EXPLAINED}
    baseline = np.asarray(bias, dtype=float) + intercept + sums["session"] + sum(expected.values())
    return ConceptEffects(baseline=baseline, effects=effects)
