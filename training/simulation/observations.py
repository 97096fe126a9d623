"""What the data show of the latent process: scores on each instrument's scale, dates, the data cut."""

from __future__ import annotations

import math

import numpy as np

from dropout_risk.features.instruments import Instrument
from dropout_risk.training.simulation.parameters import (
    ALLIANCE_NOISE_SD,
    MISSED_BASE,
    MISSED_MAX_RATE,
    MISSED_REF_LOGIT,
    MISSED_SLOPE,
    OUTCOME_RELIABILITY,
    SESSION_JITTER_DAYS,
    ScaleNorm,
)
from dropout_risk.training.simulation.process import Latents


def missed_counts(rng: np.random.Generator, logit_h: np.ndarray) -> np.ndarray:
    """No-shows/late cancellations before each attended session, rising with the hazard."""
    rate = MISSED_BASE * np.exp(MISSED_SLOPE * (logit_h - MISSED_REF_LOGIT))
    return rng.poisson(np.minimum(rate, MISSED_MAX_RATE))


def session_days(rng: np.random.Generator, missed: np.ndarray, intake_span_days: int) -> np.ndarray:
    """Day offsets from start_date: weekly with jitter, one extra week per missed appointment.

    Missed appointments before session 1 delay the first attended session likewise.
    """
    n, K = missed.shape
    offered = rng.integers(0, intake_span_days, size=(n,))
    jitter = rng.integers(-SESSION_JITTER_DAYS, SESSION_JITTER_DAYS + 1, size=(n, K))
    gaps = 7 * missed + np.where(np.arange(K)[None, :] == 0, 0, 7 + jitter)
    return offered[:, None] + np.cumsum(gaps, axis=1)


def outcome_scores(
    rng: np.random.Generator, latents: Latents, instrument: Instrument, norm: ScaleNorm, severity: float = 0.0
) -> np.ndarray:
    """Raw outcome scores (n x K): intake norms, reflected for lower-is-better, rounded, clipped.

    ``severity``: every score moved that many SDs towards worse (``SimulationConfig.intake_shift``).
    """
    lam = math.sqrt(OUTCOME_RELIABILITY)
    noise = math.sqrt(1 - OUTCOME_RELIABILITY) * rng.standard_normal(latents.change.shape)
    z = lam * (latents.intake[:, None] + norm.responsiveness * latents.change) + noise - severity
    sign = 1.0 if instrument.higher_is_better else -1.0
    raw = norm.mean + sign * norm.sd * z
    return _on_scale(raw, instrument, norm.decimals)


def alliance_scores(rng: np.random.Generator, latents: Latents, instrument: Instrument, norm: ScaleNorm) -> np.ndarray:
    """Raw alliance scores (n x K): two-piece normal around the centre, clipped at the ceiling."""
    z = latents.alliance + ALLIANCE_NOISE_SD * rng.standard_normal(latents.alliance.shape)
    z = z / math.sqrt(1 + ALLIANCE_NOISE_SD**2)
    sd_above = norm.sd_above if norm.sd_above is not None else norm.sd
    raw = norm.mean + np.where(z > 0, sd_above, norm.sd) * z
    if not instrument.higher_is_better:
        raw = instrument.min + instrument.max - raw
    return _on_scale(raw, instrument, norm.decimals)


def _on_scale(raw: np.ndarray, instrument: Instrument, decimals: int) -> np.ndarray:
    # Round like the paper form, clip to the registry range; "+ 0.0" turns -0.0 into 0.0
    # so the file never shows "-0.0".
    return np.clip(np.round(raw, decimals), instrument.min, instrument.max) + 0.0


def apply_data_cut(rng: np.random.Generator, n_sessions: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Pick round(fraction * n) clients as still in treatment and truncate their history.

    The cut falls uniformly on attended sessions 1..n_i (the end - not returning - has
    not happened yet), chosen independently of everything, so the dropout rate among
    ended episodes is unbiased.
    """
    n = n_sessions.shape[0]
    ongoing = np.zeros(n, dtype=bool)
    ongoing[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    cut = 1 + np.floor(rng.random(n) * n_sessions).astype(np.int64)
    return np.where(ongoing, cut, n_sessions), ongoing
