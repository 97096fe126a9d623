"""Synthetic cohort simulator: session-by-session outcome and alliance scores with dropout.

The generating process reproduces the published numbers in ``shared/domain.md``
section 6 (dropout rate, front-loaded timing, alliance-dropout d about 0.55,
alliance-outcome r about 0.28, PCOMS intake norms, about half of completers
recovered, younger clients leaving more) on the instrument scales of section 2.
It also records, for every attended session, the probability of eventual dropout
that the process itself implies (``true_risk``), so a model can be scored
against the best achievable.

Generating process, per client ``i`` (all vectorised over a clients x sessions
matrix; session ``k`` is column ``k - 1``):

* latents: alliance level ``z_a`` ~ N(0, 1) with a per-client linear trend
  (so some alliances decline), giving latent alliance ``A_ik``; improvement rate
  ``g_i`` correlated with ``z_a``; intake severity ``y0``; age; clinic and
  therapist; planned length ``L_i`` (the session count of a completer), drawn
  independently of everything else from ``planned_length_pmf()``.
* latent outcome ``Y_ik = y0 + g_i * dose(k)`` with a negatively accelerated dose
  curve; latent progress versus expectation ``P_ik = (g_i - mean g) * dose(k)``.
* after each attended session ``k < L_i`` the client leaves with hazard
  ``h_ik = sigmoid(b0 + time_k + alliance_effect * beta_a * A_ik
  + outcome_effect * beta_o * P_ik + beta_age * age + clinic + therapist)``;
  ``time_k`` is front-loaded.  Reaching session ``L_i`` means completion.
  ``b0`` is set by bisection so the expected dropout probability over the
  simulated clients equals ``dropout_rate`` for any effect settings.
* the hazard uses only quantities the data reveal with modest noise: ``A_ik``
  through the alliance score (single-session reliability about 0.89),
  ``P_ik`` through the outcome change since intake (reliability 0.85 per score),
  age, clinic and therapist from ``episodes``, the session number, and missed
  appointments, whose rate rises with the hazard.

``true_risk`` right after attended session ``k``: the hazards are deterministic
given the latents, and attending ``k`` tells us only that ``L_i >= k`` (the
survival factor for sessions before ``k`` is the same for every ``L >= k``, so it
cancels).  Hence::

    true_risk_ik = sum_{L >= k} P(L | L >= k) * (1 - prod_{j=k}^{L-1} (1 - h_ij))
                 = 1 - R_ik / P(L >= k),
    R_ik = sum_{L >= k} P(L) * prod_{j=k}^{L-1} (1 - h_ij),
    computed backwards as R_iK = P(K), R_ik = P(k) + (1 - h_ik) * R_i,k+1.

The ``L = k`` term contributes 0 (a client whose planned length is ``k`` completes
at ``k``).  At ``k = 1`` this is the client's marginal dropout probability.  Missed
appointments are drawn given the hazard, so they carry no information beyond the
latents and ``true_risk`` stays the best achievable score.

Observation details: ``missed_since_last`` at session 1 counts no-shows of offered
first appointments (each delays session 1 by a week, as later misses delay later
sessions).  ``ongoing`` clients are a data cut taken independently of everything
else, so the dropout rate among ended episodes stays unbiased; their truth rows use
the same formula.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry

# --------------------------------------------------------------------------------------
# Calibrated constants.  Tuned on seeds 0-9 at 5,000 clients (and 20,000-50,000 for
# the small effects) so the statistics in tests/training/test_simulate_statistics.py
# sit on the domain.md section 6 targets on average, not just for one seed.
# --------------------------------------------------------------------------------------

#: Longest planned treatment; also the width of the clients x sessions matrix.
MAX_SESSIONS = 26
#: Planned length L = 2 + NegBin(size, mean), truncated at MAX_SESSIONS.  Completers'
#: mean session count comes out near 8 (NHS Talking Therapies 6.9-7.9, domain.md s6);
#: E[L] sits above 8 because long plans give more chances to leave early.
_LENGTH_MIN = 2
_LENGTH_NB_SIZE = 2.0
_LENGTH_NB_MEAN = 6.6

#: Front-loaded session effect on the dropout logit: time_k = step * max(flat_from - k, 0),
#: falling by ``step`` per session until session ``flat_from`` and flat after, so most
#: dropouts leave within sessions 1-4 (Anderson et al. 2019, domain.md s6) and the
#: per-session hazard visibly falls over sessions 1-4.
_TIME_STEP = 0.45
_TIME_FLAT_FROM = 5

#: Dropout-logit slopes at alliance_effect = outcome_effect = 1 (standardised latents).
#: beta_a gives alliance-dropout d about 0.55 (Sharf et al. 2010).  beta_o is modest
#: because progress shares variance with alliance (rho below): a larger slope would
#: leak an alliance-dropout gap into alliance_effect = 0 (d there is about 0.04).
#: beta_age is per decade from age 40: younger clients leave more (Swift & Greenberg 2012).
_BETA_ALLIANCE = -0.5
_BETA_PROGRESS = -0.25
_BETA_AGE_PER_DECADE = -0.2
_AGE_CENTRE = 40.0

#: Clinic effects are the normal quantiles of this SD (shuffled), so clinics always
#: differ; therapist effects are small and random.
_CLINIC_SD = 0.35
_THERAPISTS_PER_CLINIC = (2, 6)  # inclusive range
_THERAPIST_SD = 0.15

#: Alliance: latent level N(0, 1) plus a per-client trend per session (mean, SD).  The
#: mean trend is 0 on purpose: a rising average would give completers (who stay longer)
#: a higher mean alliance even when alliance does not drive dropout.
_ALLIANCE_TREND_MEAN = 0.0
_ALLIANCE_TREND_SD = 0.06
#: Measurement noise SD on the standardised alliance: reliability 1 / (1 + 0.35^2) = 0.89,
#: close to the SRS internal consistency (alpha 0.88, Duncan et al. 2003).
_ALLIANCE_NOISE_SD = 0.35

#: Improvement: g = mean + sd * (rho * z_a + sqrt(1 - rho^2) * e), in intake SDs at full
#: dose.  rho gives the observed alliance-outcome r about 0.28 (Fluckiger et al. 2018).
_IMPROVEMENT_MEAN = 1.75
_IMPROVEMENT_SD = 0.75
_IMPROVEMENT_ALLIANCE_RHO = 0.5
#: dose(k) = 1 - exp(-(k-1)/tau): most change comes in the first sessions.
_DOSE_TAU = 4.0
#: Per-score reliability of the outcome measure (ORS test-retest ~0.8-0.85).
_OUTCOME_RELIABILITY = 0.85

#: Missed appointments before session k ~ Poisson(base * exp(slope * (logit h_ik - ref)))
#: so clients at risk miss more (the "missed sessions before dropout" signal).
_MISSED_BASE = 0.35
_MISSED_SLOPE = 0.6
_MISSED_REF_LOGIT = math.log(0.1 / 0.9)
_MISSED_MAX_RATE = 3.0
_SESSION_JITTER_DAYS = 2  # sessions are weekly +- this many days

#: Age = 18 + 62 * Beta(a, b): adult outpatients, mean about 38, long right tail.
_AGE_BETA = (2.0, 4.3)
_GENDERS = ("F", "M", "other")
_GENDER_P = (0.65, 0.33, 0.02)

#: truth.csv precision; fixed so files are byte-stable.
TRUE_RISK_DECIMALS = 6


@dataclass(frozen=True)
class _ScaleNorm:
    """How the standardised latent maps onto one instrument's raw scale."""

    mean: float  # raw intake mean (alliance: centre of the two-piece normal, before clipping)
    sd: float  # raw units per standardised unit (alliance: below the centre)
    decimals: int
    responsiveness: float = 1.0  # raw change per latent change, in SDs (outcome only)
    sd_above: float | None = None  # alliance: SD above the centre (two-piece, skewed)


#: Outcome intake norms, approximate published outpatient values: ORS mean 19 SD 7
#: (PCOMS norms, domain.md s2/s6); PHQ-9 about 16 SD 5 (NHS Talking Therapies intake);
#: OQ-45 about 80 SD 22 (Lambert et al. outpatient norms); CORE-10 about 20 SD 7
#: (Barkham et al. 2013 clinical sample).  Responsiveness differs by instrument because
#: pre-post effect sizes do (PHQ-9/CORE-10 move more than the ORS in SD units); it is
#: tuned so about half of completers recover on every scale.
OUTCOME_NORMS: dict[str, _ScaleNorm] = {
    "ors": _ScaleNorm(mean=19.0, sd=7.0, decimals=1, responsiveness=1.0),
    "phq9": _ScaleNorm(mean=16.0, sd=5.0, decimals=0, responsiveness=1.45),
    "oq45": _ScaleNorm(mean=80.0, sd=22.0, decimals=0, responsiveness=0.95),
    "core10": _ScaleNorm(mean=20.0, sd=7.0, decimals=0, responsiveness=1.4),
}
#: Alliance norms: SRS mean about 36.5, SD about 3.5, piled against the 40 ceiling
#: (PCOMS norms); WAI-SR mean about 48, SD about 8 on 12-60 (Hatcher & Gillaspy 2006).
#: A two-piece normal (wider below the centre) gives the left skew before clipping.
ALLIANCE_NORMS: dict[str, _ScaleNorm] = {
    "srs": _ScaleNorm(mean=37.4, sd=5.0, sd_above=2.4, decimals=1),
    "wai_sr": _ScaleNorm(mean=48.2, sd=8.8, sd_above=7.5, decimals=0),
}


class SimulationConfig(BaseModel):
    """Everything that defines a simulated cohort; the same config and seed give the same files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_clients: int = Field(ge=1)
    seed: int = 0
    dropout_rate: float = Field(default=0.25, gt=0, lt=1)
    outcome: Literal["ors", "phq9", "oq45", "core10"] = "ors"
    alliance: Literal["srs", "wai_sr", "none"] = "srs"
    n_clinics: int = Field(default=5, ge=1)
    alliance_effect: float = Field(default=1.0, ge=0)
    outcome_effect: float = Field(default=1.0, ge=0)
    ongoing_fraction: float = Field(default=0.05, ge=0, lt=1)
    start_date: datetime.date = datetime.date(2023, 1, 2)
    intake_span_days: int = Field(default=730, ge=1)


@dataclass(frozen=True)
class Cohort:
    """The three tables of the data contract (``session_date`` is an ISO string, as in the file)."""

    sessions: pd.DataFrame
    episodes: pd.DataFrame
    truth: pd.DataFrame


@dataclass(frozen=True)
class _Latents:
    alliance: np.ndarray  # (n, K) latent alliance A_ik, standardised
    intake: np.ndarray  # (n,) y0, intake SDs, higher = better
    change: np.ndarray  # (n, K) g_i * dose(k): latent change since intake; Y_ik = y0 + change
    progress: np.ndarray  # (n, K) P_ik = (g_i - mean g) * dose(k)
    age: np.ndarray  # (n,) int
    gender: np.ndarray  # (n,) str
    clinic: np.ndarray  # (n,) int index
    therapist: np.ndarray  # (n,) int index into the therapist table
    therapist_clinic: np.ndarray  # (T,) clinic of each therapist
    therapist_rank: np.ndarray  # (T,) 1-based number of each therapist within its clinic
    group_effect: np.ndarray  # (n,) clinic + therapist logit effect
    planned_length: np.ndarray  # (n,) L_i


# --------------------------------------------------------------------------------------
# Pure building blocks
# --------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free for large |x|


def log_survival(logit_h: np.ndarray) -> np.ndarray:
    """log(1 - sigmoid(x)) without cancellation: -softplus(x)."""
    return -np.logaddexp(0.0, logit_h)


def planned_length_pmf(max_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """P(L = l) for l = 0..max_sessions (zero below ``_LENGTH_MIN``).

    L = 2 + NegBin, truncated and renormalised at ``max_sessions``; the minimum of 2
    is the NHS "finished a course" threshold (domain.md s1).
    """
    r = _LENGTH_NB_SIZE
    p = r / (r + _LENGTH_NB_MEAN)
    x = np.arange(0, max_sessions - _LENGTH_MIN + 1)
    log_pmf = np.array([math.lgamma(v + r) - math.lgamma(r) - math.lgamma(v + 1) for v in x])
    log_pmf += r * math.log(p) + x * math.log1p(-p)
    pmf = np.zeros(max_sessions + 1)
    pmf[_LENGTH_MIN:] = np.exp(log_pmf)
    return pmf / pmf.sum()


def time_effect(n_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """Front-loaded dropout logit per session k = 1..n (domain.md s6: early leaving)."""
    k = np.arange(1, n_sessions + 1)
    return _TIME_STEP * np.maximum(_TIME_FLAT_FROM - k, 0)


def dose(n_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """Share of a client's full improvement reached by session k = 1..n (0 at intake)."""
    k = np.arange(n_sessions)
    return 1.0 - np.exp(-k / _DOSE_TAU)


def clinic_effects(rng: np.random.Generator, n_clinics: int) -> np.ndarray:
    """Evenly spread normal quantiles, shuffled: clinics always differ, by a known amount."""
    if n_clinics == 1:
        return np.zeros(1)
    quantiles = [NormalDist().inv_cdf((j + 0.5) / n_clinics) for j in range(n_clinics)]
    return rng.permutation(_CLINIC_SD * np.asarray(quantiles))


def _draw_latents(streams: dict[str, np.random.Generator], config: SimulationConfig) -> _Latents:
    n, K = config.n_clients, MAX_SESSIONS
    k0 = np.arange(K)  # sessions since the first

    rng = streams["alliance"]
    z_alliance = rng.standard_normal(n)
    trend = _ALLIANCE_TREND_MEAN + _ALLIANCE_TREND_SD * rng.standard_normal(n)
    alliance = z_alliance[:, None] + trend[:, None] * k0[None, :]

    # Improvement shares variance with the alliance level, not with the alliance effect
    # on dropout, so r about 0.28 holds whatever alliance_effect is (brief).
    rng = streams["outcome"]
    rho = _IMPROVEMENT_ALLIANCE_RHO
    g = _IMPROVEMENT_MEAN + _IMPROVEMENT_SD * (rho * z_alliance + math.sqrt(1 - rho**2) * rng.standard_normal(n))
    intake = rng.standard_normal(n)
    d = dose(K)
    change = g[:, None] * d[None, :]
    progress = (g - _IMPROVEMENT_MEAN)[:, None] * d[None, :]

    rng = streams["demographics"]
    age = 18 + np.rint(62 * rng.beta(*_AGE_BETA, size=n)).astype(np.int64)
    gender = np.asarray(_GENDERS)[rng.choice(len(_GENDERS), size=n, p=_GENDER_P)]

    rng = streams["clinics"]
    c_eff = clinic_effects(rng, config.n_clinics)
    lo, hi = _THERAPISTS_PER_CLINIC
    n_ther = rng.integers(lo, hi + 1, size=config.n_clinics)
    therapist_clinic = np.repeat(np.arange(config.n_clinics), n_ther)
    starts = np.cumsum(n_ther) - n_ther
    therapist_rank = np.arange(n_ther.sum()) - np.repeat(starts, n_ther) + 1
    t_eff = _THERAPIST_SD * rng.standard_normal(n_ther.sum())
    # Clinics differ in size too (real services do); Dirichlet shares.
    clinic_share = rng.dirichlet(np.full(config.n_clinics, 8.0))
    clinic = rng.choice(config.n_clinics, size=n, p=clinic_share)
    therapist = starts[clinic] + np.floor(rng.random(n) * n_ther[clinic]).astype(np.int64)
    group_effect = c_eff[clinic] + t_eff[therapist]

    pmf = planned_length_pmf(K)
    planned_length = streams["length"].choice(K + 1, size=n, p=pmf)

    return _Latents(
        alliance=alliance,
        intake=intake,
        change=change,
        progress=progress,
        age=age,
        gender=gender,
        clinic=clinic,
        therapist=therapist,
        therapist_clinic=therapist_clinic,
        therapist_rank=therapist_rank,
        group_effect=group_effect,
        planned_length=planned_length,
    )


def hazard_logit_without_intercept(latents: _Latents, config: SimulationConfig) -> np.ndarray:
    """Dropout logit after each session, all terms except b0 (n x K)."""
    age_term = _BETA_AGE_PER_DECADE * (latents.age - _AGE_CENTRE) / 10.0
    return (
        time_effect(latents.alliance.shape[1])[None, :]
        + config.alliance_effect * _BETA_ALLIANCE * latents.alliance
        + config.outcome_effect * _BETA_PROGRESS * latents.progress
        + (age_term + latents.group_effect)[:, None]
    )


def expected_dropout(logit_h: np.ndarray, planned_length: np.ndarray) -> float:
    """Mean over clients of 1 - prod_{j < L_i} (1 - h_ij): the closed-form expected rate."""
    rows, log_h = _at_risk_entries(logit_h, planned_length)
    return _mean_dropout(rows, log_h, 0.0, logit_h.shape[0])


def _at_risk_entries(logit_h: np.ndarray, planned_length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Client index and logit of every (client, session k < L_i) hazard that can end an episode."""
    k = np.arange(1, logit_h.shape[1] + 1)
    at_risk = k[None, :] < planned_length[:, None]
    return np.nonzero(at_risk)[0], logit_h[at_risk]


def _mean_dropout(rows: np.ndarray, log_h: np.ndarray, shift: float, n: int) -> float:
    log_stay = np.bincount(rows, weights=log_survival(log_h + shift), minlength=n)
    return float(np.mean(-np.expm1(log_stay)))


def calibrate_intercept(base_logit: np.ndarray, planned_length: np.ndarray, target: float) -> float:
    """b0 such that the expected dropout probability equals ``target``.

    Bisection works because the expected rate rises monotonically with b0; 60 halvings
    of [-30, 30] reach float precision.  Only hazards with k < L_i enter the sum.
    """
    rows, log_h = _at_risk_entries(base_logit, planned_length)
    n = base_logit.shape[0]
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _mean_dropout(rows, log_h, mid, n) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def simulate_attendance(
    rng: np.random.Generator, logit_h: np.ndarray, planned_length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Realised sessions attended and dropout flag: leave after k with prob h_ik, while k < L_i."""
    n, K = logit_h.shape
    k = np.arange(1, K + 1)
    leaves = (rng.random((n, K)) < sigmoid(logit_h)) & (k[None, :] < planned_length[:, None])
    dropped = leaves.any(axis=1)
    first_leave = np.argmax(leaves, axis=1) + 1
    n_sessions = np.where(dropped, first_leave, planned_length)
    return n_sessions, dropped


def true_risk_matrix(logit_h: np.ndarray, pmf: np.ndarray) -> np.ndarray:
    """P(eventual dropout | latents, attended k) for k = 1..K (see module docstring).

    Backward recursion R_k = P(L=k) + (1 - h_k) R_{k+1}; risk = 1 - R_k / P(L >= k).
    Columns with P(L >= k) = 0 cannot be attended and are NaN.
    """
    n, K = logit_h.shape
    p = pmf[1 : K + 1]
    tail = np.cumsum(p[::-1])[::-1]  # P(L >= k)
    stay = np.exp(log_survival(logit_h))
    R = np.empty((n, K))
    R[:, K - 1] = p[K - 1]
    for col in range(K - 2, -1, -1):  # over sessions, not clients
        R[:, col] = p[col] + stay[:, col] * R[:, col + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = 1.0 - R / tail[None, :]
    risk[:, tail <= 0] = np.nan
    return np.clip(risk, 0.0, 1.0) + 0.0  # no -0.0 in truth.csv


def missed_counts(rng: np.random.Generator, logit_h: np.ndarray) -> np.ndarray:
    """No-shows/late cancellations before each attended session, rising with the hazard."""
    rate = _MISSED_BASE * np.exp(_MISSED_SLOPE * (logit_h - _MISSED_REF_LOGIT))
    return rng.poisson(np.minimum(rate, _MISSED_MAX_RATE))


def session_days(rng: np.random.Generator, missed: np.ndarray, intake_span_days: int) -> np.ndarray:
    """Day offsets from start_date: weekly with jitter, one extra week per missed appointment.

    Missed appointments before session 1 delay the first attended session likewise.
    """
    n, K = missed.shape
    offered = rng.integers(0, intake_span_days, size=n)
    jitter = rng.integers(-_SESSION_JITTER_DAYS, _SESSION_JITTER_DAYS + 1, size=(n, K))
    gaps = 7 * missed + np.where(np.arange(K)[None, :] == 0, 0, 7 + jitter)
    return offered[:, None] + np.cumsum(gaps, axis=1)


def outcome_scores(rng: np.random.Generator, latents: _Latents, instrument: Instrument, norm: _ScaleNorm) -> np.ndarray:
    """Raw outcome scores (n x K): intake norms, reflected for lower-is-better, rounded, clipped."""
    lam = math.sqrt(_OUTCOME_RELIABILITY)
    noise = math.sqrt(1 - _OUTCOME_RELIABILITY) * rng.standard_normal(latents.change.shape)
    z = lam * (latents.intake[:, None] + norm.responsiveness * latents.change) + noise
    sign = 1.0 if instrument.higher_is_better else -1.0
    raw = norm.mean + sign * norm.sd * z
    return _on_scale(raw, instrument, norm.decimals)


def alliance_scores(
    rng: np.random.Generator, latents: _Latents, instrument: Instrument, norm: _ScaleNorm
) -> np.ndarray:
    """Raw alliance scores (n x K): two-piece normal around the centre, clipped at the ceiling."""
    z = latents.alliance + _ALLIANCE_NOISE_SD * rng.standard_normal(latents.alliance.shape)
    z = z / math.sqrt(1 + _ALLIANCE_NOISE_SD**2)
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


def _client_ids(n: int) -> np.ndarray:
    width = max(5, len(str(n)))
    return np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _format_scores(values: np.ndarray, decimals: int) -> np.ndarray:
    return values.astype(np.int64) if decimals == 0 else values


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent named streams, so e.g. switching instrument leaves the latent cohort alone."""
    names = [
        "alliance",
        "outcome",
        "demographics",
        "clinics",
        "length",
        "attendance",
        "missed",
        "dates",
        "outcome_noise",
        "alliance_noise",
        "data_cut",
    ]
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def simulate_cohort(config: SimulationConfig, registry: InstrumentRegistry | None = None) -> Cohort:
    """Simulate one cohort (sessions, episodes, truth) from ``config``; pure and deterministic."""
    registry = default_registry() if registry is None else registry
    outcome_instrument = registry[config.outcome]
    alliance_instrument = None if config.alliance == "none" else registry[config.alliance]
    streams = _streams(config.seed)

    latents = _draw_latents(streams, config)
    base_logit = hazard_logit_without_intercept(latents, config)
    b0 = calibrate_intercept(base_logit, latents.planned_length, config.dropout_rate)
    logit_h = base_logit + b0

    n_sessions, dropped = simulate_attendance(streams["attendance"], logit_h, latents.planned_length)
    risk = true_risk_matrix(logit_h, planned_length_pmf(MAX_SESSIONS))
    missed = missed_counts(streams["missed"], logit_h)
    days = session_days(streams["dates"], missed, config.intake_span_days)
    outcome = outcome_scores(streams["outcome_noise"], latents, outcome_instrument, OUTCOME_NORMS[config.outcome])
    alliance = (
        None
        if alliance_instrument is None
        else alliance_scores(streams["alliance_noise"], latents, alliance_instrument, ALLIANCE_NORMS[config.alliance])
    )
    observed, ongoing = apply_data_cut(streams["data_cut"], n_sessions, config.ongoing_fraction)

    ids = _client_ids(config.n_clients)
    attended = np.arange(1, MAX_SESSIONS + 1)[None, :] <= observed[:, None]
    rows, cols = np.nonzero(attended)  # row-major: sorted by client, then session
    dates = np.datetime64(config.start_date, "D") + days[rows, cols]

    sessions = {
        "client_id": ids[rows],
        "session_number": (cols + 1).astype(np.int64),
        "session_date": np.datetime_as_string(dates, unit="D"),
        "missed_since_last": missed[rows, cols].astype(np.int64),
        outcome_instrument.key: _format_scores(outcome[rows, cols], OUTCOME_NORMS[config.outcome].decimals),
    }
    if alliance is not None:
        sessions[alliance_instrument.key] = _format_scores(
            alliance[rows, cols], ALLIANCE_NORMS[config.alliance].decimals
        )

    status = np.where(ongoing, "ongoing", np.where(dropped, "dropout", "completed"))
    clinic_labels = np.char.add("clinic", np.char.zfill((np.arange(config.n_clinics) + 1).astype(str), 2))
    therapist_labels = np.char.add(
        np.char.add(clinic_labels[latents.therapist_clinic], "-t"),
        np.char.zfill(latents.therapist_rank.astype(str), 2),
    )
    episodes = {
        "client_id": ids,
        "status": status,
        "clinic_id": clinic_labels[latents.clinic],
        "therapist_id": therapist_labels[latents.therapist],
        "age": latents.age.astype(np.int64),
        "gender": latents.gender,
    }
    truth = {
        "client_id": sessions["client_id"],
        "session_number": sessions["session_number"],
        "true_risk": np.round(risk[rows, cols], TRUE_RISK_DECIMALS),
    }
    return Cohort(sessions=_frame(sessions), episodes=_frame(episodes), truth=_frame(truth))


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    # Plain Python strings (not numpy "<U" arrays) so pandas picks its own string dtype.
    return pd.DataFrame(
        {name: (values.astype(object) if values.dtype.kind == "U" else values) for name, values in columns.items()}
    )


def write_cohort(cohort: Cohort, out_dir: Path) -> dict[str, Path]:
    """Write sessions.csv, episodes.csv and truth.csv; fixed float formats keep files byte-stable."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = {"sessions": "%.1f", "episodes": None, "truth": f"%.{TRUE_RISK_DECIMALS}f"}
    paths = {}
    for name, float_format in formats.items():
        path = out_dir / f"{name}.csv"
        getattr(cohort, name).to_csv(path, index=False, float_format=float_format, lineterminator="\n")
        paths[name] = path
    return paths
