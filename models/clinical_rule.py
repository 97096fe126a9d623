"""The transparent baseline: count the PCOMS and OQ rules that fire, as a score.

The score is the number of clinical flags firing on a row (see
``features.flags``); ``fit`` learns the observed dropout rate for each count,
smoothed toward the overall rate and forced monotone, so the baseline yields
probabilities that the same metrics can judge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression

from dropout_risk.features.flags import FLAGS, clinical_flags
from dropout_risk.features.spec import FeatureSpec

PRIOR_STRENGTH = 10.0  # pseudo-rows pulling a rare count's rate toward the overall rate


class ClinicalRuleClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, spec: dict | None = None):
        self.spec = spec

    def _spec(self) -> FeatureSpec:
        if self.spec is None:  # None only as scikit-learn's default-constructible placeholder
            raise ValueError("ClinicalRuleClassifier needs the feature spec (spec=FeatureSpec.to_dict())")
        return FeatureSpec.from_dict(self.spec)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Number of flags firing (0 to 5)."""
        return clinical_flags(X, self._spec()).sum(axis=1).to_numpy(dtype=float)

    def fit(self, X: pd.DataFrame, y) -> ClinicalRuleClassifier:
        y = np.asarray(y, dtype=float)
        score = self.decision_function(X)
        overall = y.mean()
        counts = np.arange(len(FLAGS) + 1, dtype=float)
        n = np.array([(score == c).sum() for c in counts])
        events = np.array([y[score == c].sum() for c in counts])
        smoothed = (events + PRIOR_STRENGTH * overall) / (n + PRIOR_STRENGTH)
        self.rate_ = IsotonicRegression(increasing=True).fit(counts, smoothed, sample_weight=n + 1).predict(counts)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.rate_[self.decision_function(X).astype(int)]
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
