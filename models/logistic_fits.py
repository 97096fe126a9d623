"""Unpenalised logistic fits of logit P(y) = a + b x (or a + x: x an offset), many weightings at once.

Calibration slope and intercept are such fits on x = logit(risk): training's metrics and their
client bootstrap fit one per resample (training/evaluation/batched.py); the monitor's realised
calibration and a clinic's recalibration fit one on a clinic's served risks (models/realised.py).
One Newton solver serves all of them, so a clinic's calibration slope is the same statistic as the
model's validation slope.
"""

from __future__ import annotations

import numpy as np

_NEWTON_MAX_ITER = 50
_NEWTON_TOL = 1e-6  # stop once a step is this small; Newton converges quadratically, so the
#                     error left after applying that step is of order its square (~1e-12)
_NEWTON_MAX_STEP = 10.0
_HALVINGS = 30


def _sigmoid_into(eta: np.ndarray) -> np.ndarray:
    """In-place logistic function (exp/reciprocal: about twice as fast as scipy's expit)."""
    with np.errstate(over="ignore"):
        np.negative(eta, out=eta)
        np.exp(eta, out=eta)
    eta += 1.0
    return np.reciprocal(eta, out=eta)


def _log_likelihood(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    eta = b[:, None] * x[None, :] + a[:, None]
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged fit gives NaN: judged as not worse
        return (w * (y[None, :] * eta - np.logaddexp(0.0, eta))).sum(axis=1)


def newton_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray, fit_slope: bool) -> np.ndarray:
    """Unpenalised weighted logistic fits logit P(y) = a + b x, one per row of w.

    fit_slope=False fixes b = 1 (x is an offset). ``start`` is (a, b). Returns (n, 2) with NaN
    for fits that do not converge (separation) or have a singular information matrix.
    """
    n_fit = w.shape[0]
    a = np.full(n_fit, start[0])
    b = np.full(n_fit, start[1] if fit_slope else 1.0)
    features = np.stack([np.ones_like(x), x, x * x], axis=1)
    eta = np.empty_like(w)
    tmp = np.empty_like(w)
    converged = np.zeros(n_fit, dtype=bool)
    for _ in range(_NEWTON_MAX_ITER):
        np.multiply(b[:, None], x[None, :], out=eta)
        eta += a[:, None]
        mu = _sigmoid_into(eta)
        np.subtract(y[None, :], mu, out=tmp)
        tmp *= w
        grad = tmp @ features[:, :2]  # (n_fit, 2): sum w (y - mu) [1, x]
        np.subtract(1.0, mu, out=tmp)
        tmp *= mu
        tmp *= w
        info = tmp @ features  # sum w mu (1 - mu) [1, x, x^2]
        da, db = _newton_direction(grad, info, fit_slope)
        size = np.maximum(np.abs(da), np.abs(db))
        scale = np.where(size > _NEWTON_MAX_STEP, _NEWTON_MAX_STEP / np.where(size > 0, size, 1.0), 1.0)
        a, b = _halved_step(a, b, da, db, scale, x, y, w)
        converged = size < _NEWTON_TOL
        if (converged | ~np.isfinite(size)).all():
            break
    fit = np.stack([a, b], axis=1)
    fit[~converged] = np.nan
    return fit


def _newton_direction(grad: np.ndarray, info: np.ndarray, fit_slope: bool) -> tuple[np.ndarray, np.ndarray]:
    """The Newton step (da, db) of every fit; NaN where the information matrix is singular."""
    if fit_slope:
        h00, h01, h11 = info[:, 0], info[:, 1], info[:, 2]
        det = h00 * h11 - h01 * h01
        good = det > 1e-12 * np.maximum(h00 * h11, 1e-300)  # all x equal -> no slope
        safe = np.where(good, det, 1.0)
        da = np.where(good, (h11 * grad[:, 0] - h01 * grad[:, 1]) / safe, np.nan)
        db = np.where(good, (h00 * grad[:, 1] - h01 * grad[:, 0]) / safe, np.nan)
        return da, db
    h00 = info[:, 0]
    da = np.divide(grad[:, 0], h00, out=np.full(grad.shape[0], np.nan), where=h00 > 0)
    return da, np.zeros(grad.shape[0])


def _halved_step(
    a: np.ndarray,
    b: np.ndarray,
    da: np.ndarray,
    db: np.ndarray,
    scale: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) moved by ``scale`` times the step, halved for each fit whose likelihood it lowers.

    A full Newton step from (0, 1) overshoots and oscillates when the predictions are
    strongly over-confident, exactly the case the slope must catch.
    """
    before = _log_likelihood(a, b, x, y, w)
    for _ in range(_HALVINGS):
        new_a, new_b = a + scale * da, b + scale * db
        worse = _log_likelihood(new_a, new_b, x, y, w) < before - 1e-10 * np.abs(before)
        if not worse.any():
            break
        scale = np.where(worse, scale / 2, scale)
    return new_a, new_b
