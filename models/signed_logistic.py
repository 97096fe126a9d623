"""Logistic regression whose coefficients keep the signs clinical knowledge gives them.

scikit-learn's ``LogisticRegression`` has no bounds on coefficients, so this fits the same L2-penalised
objective (``C`` x summed log-loss + half the squared norm of the coefficients, intercept unpenalised)
with SciPy's L-BFGS-B, which takes bounds: a feature declared to raise the risk gets a coefficient >= 0,
one declared to lower it <= 0, any other is free. Written here rather than taken from a GLM library
because it is a dozen lines over SciPy, and it keeps the fitted attributes scikit-learn's estimator has
(``coef_``, ``intercept_``, ``classes_``), so the pipeline, its contributions and the scorer artifact
treat it exactly as they treat ``LogisticRegression``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class SignConstrainedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary L2 logistic regression; ``signs`` maps input column names to +1, -1 or 0 (absent: 0).

    The design matrix must come as a DataFrame (a ``ColumnTransformer`` with pandas output) so
    that columns can be matched to their declared signs by name.
    """

    def __init__(self, C: float = 1.0, signs: Mapping[str, int] | None = None, max_iter: int = 5000, tol=1e-10):
        self.C = C
        self.signs = signs
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        names = [str(c) for c in getattr(X, "columns", [])]
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError("SignConstrainedLogisticRegression needs both outcome classes in y")
        if len(names) != X.shape[1]:
            raise ValueError("fit SignConstrainedLogisticRegression on a DataFrame (its columns carry the signs)")
        target = (y == self.classes_[1]).astype(float)
        signs = dict(self.signs or {})
        bounds = [_bound(signs.get(name, 0)) for name in names] + [(None, None)]
        result = minimize(
            _loss,
            np.zeros(X.shape[1] + 1),
            args=(X, target, float(self.C)),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": self.tol * 1e-3},
        )
        self.coef_ = result.x[:-1].reshape(1, -1)
        self.intercept_ = result.x[-1:].copy()
        self.n_iter_ = np.array([result.nit])
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        # The same operations as scikit-learn's linear models (and models.compiled), so risks agree to the bit.
        return (np.ascontiguousarray(X, dtype=float) @ self.coef_.T + self.intercept_).reshape(-1)

    def predict_proba(self, X) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def _bound(sign: int) -> tuple[float | None, float | None]:
    if sign > 0:
        return (0.0, None)
    if sign < 0:
        return (None, 0.0)
    return (None, None)


def _loss(params: np.ndarray, X: np.ndarray, y: np.ndarray, C: float) -> tuple[float, np.ndarray]:
    """C x summed log-loss + ||w||^2 / 2 and its gradient (the intercept, last, is not penalised)."""
    w, b = params[:-1], params[-1]
    z = X @ w + b
    loss = -np.sum(y * log_expit(z) + (1.0 - y) * log_expit(-z))
    residual = expit(z) - y
    gradient = np.append(C * (X.T @ residual) + w, C * residual.sum())
    return C * loss + 0.5 * float(w @ w), gradient
