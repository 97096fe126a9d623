"""A clinic's update of a model's calibrated log-odds: logit p' = intercept + slope * logit p (Steyerberg's
"recalibration in the large" when the slope is 1, "logistic recalibration" otherwise).

``UpdatedScorer`` wraps a scorer (``models.compiled.CompiledModel``) so that everything scoring reads
moves together: the risks, the per-feature contributions and the concept effects (scaled by the
slope; the intercept joins the bias and the baseline), so explanations still sum to the updated
log-odds and "what changed" still sums to the change in the updated risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit

from dropout_risk.models.reference import ConceptEffects

EPS = 1e-12


def update_probability(p: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """The updated risk of each calibrated risk ``p``."""
    return expit(intercept + slope * logit(np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)))


@dataclass(frozen=True)
class UpdatedScorer:
    scorer: Any  # a CompiledModel, or anything with its scoring methods
    intercept: float
    slope: float

    @property
    def columns(self) -> Sequence[str]:
        return self.scorer.columns

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.scorer.inputs

    @property
    def reference(self) -> Any:
        return self.scorer.reference

    def predict(self, X: np.ndarray) -> np.ndarray:
        return update_probability(self.scorer.predict(X), self.intercept, self.slope)

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts, bias = self.scorer.contributions(X)
        return parts * self.slope, bias * self.slope + self.intercept

    def concept_effects(self, X: np.ndarray) -> ConceptEffects:
        effects = self.scorer.concept_effects(X)
        return ConceptEffects(
            baseline=effects.baseline * self.slope + self.intercept,
            effects={name: value * self.slope for name, value in effects.effects.items()},
        )
