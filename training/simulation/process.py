"""The simulator's latent process: session-by-session course, dropout hazard and true risk.

The generating process reproduces the published numbers in ``docs/domain.md``
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

No signal (``SimulationConfig.no_signal``): alliance, progress, age, clinic and therapist
all leave the hazard, so ``h_ik = sigmoid(b0 + time_k)`` is the same for every client at
session ``k``. Missed appointments, drawn from that hazard, are then independent of
everything client-specific too, and ``true_risk`` depends on the session number only: no
feature can rank clients within a session, which is what a no-signal check needs.

Observation details: ``missed_since_last`` at session 1 counts no-shows of offered
first appointments (each delays session 1 by a week, as later misses delay later
sessions).  ``ongoing`` clients are a data cut taken independently of everything
else, so the dropout rate among ended episodes stays unbiased; their truth rows use
the same formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from dropout_risk.training.simulation.parameters import (
    AGE_BETA,
    AGE_CENTRE,
    ALLIANCE_TREND_MEAN,
    ALLIANCE_TREND_SD,
    BETA_AGE_PER_DECADE,
    BETA_ALLIANCE,
    BETA_PROGRESS,
    CLINIC_SD,
    DOSE_TAU,
    GENDER_P,
    GENDERS,
    IMPROVEMENT_ALLIANCE_RHO,
    IMPROVEMENT_MEAN,
    IMPROVEMENT_SD,
    LENGTH_MIN,
    LENGTH_NB_MEAN,
    LENGTH_NB_SIZE,
    MAX_SESSIONS,
    THERAPIST_SD,
    THERAPISTS_PER_CLINIC,
    TIME_FLAT_FROM,
    TIME_STEP,
)


@dataclass(frozen=True)
class ClinicTable:
    """The clinics and therapists of a population: their effects on dropout, sizes and staff."""

    clinic_effect: np.ndarray  # (C,) logit effect of each clinic
    therapists: np.ndarray  # (C,) therapists per clinic
    therapist_effect: np.ndarray  # (T,) logit effect of each therapist
    clinic_share: np.ndarray  # (C,) share of clients each clinic sees

    @property
    def first_therapist(self) -> np.ndarray:
        """Index of each clinic's first therapist in the therapist table."""
        return np.cumsum(self.therapists) - self.therapists


@dataclass(frozen=True)
class Latents:
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
    clinics: ClinicTable  # the population's clinics and therapists


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free for large |x|


def log_survival(logit_h: np.ndarray) -> np.ndarray:
    """log(1 - sigmoid(x)) without cancellation: -softplus(x)."""
    return -np.logaddexp(0.0, logit_h)


def planned_length_pmf(max_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """P(L = l) for l = 0..max_sessions (zero below ``LENGTH_MIN``).

    L = 2 + NegBin, truncated and renormalised at ``max_sessions``; the minimum of 2
    is the NHS "finished a course" threshold (domain.md s1).
    """
    r = LENGTH_NB_SIZE
    p = r / (r + LENGTH_NB_MEAN)
    x = np.arange(0, max_sessions - LENGTH_MIN + 1)
    log_pmf = np.array([math.lgamma(v + r) - math.lgamma(r) - math.lgamma(v + 1) for v in x])
    log_pmf += r * math.log(p) + x * math.log1p(-p)
    pmf = np.zeros(max_sessions + 1)
    pmf[LENGTH_MIN:] = np.exp(log_pmf)
    return pmf / pmf.sum()


def time_effect(n_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """Front-loaded dropout logit per session k = 1..n (domain.md s6: early leaving)."""
    k = np.arange(1, n_sessions + 1)
    return TIME_STEP * np.maximum(TIME_FLAT_FROM - k, 0)


def dose(n_sessions: int = MAX_SESSIONS) -> np.ndarray:
    """Share of a client's full improvement reached by session k = 1..n (0 at intake)."""
    k = np.arange(n_sessions)
    return 1.0 - np.exp(-k / DOSE_TAU)


def clinic_effects(rng: np.random.Generator, n_clinics: int) -> np.ndarray:
    """Evenly spread normal quantiles, shuffled: clinics always differ, by a known amount."""
    if n_clinics == 1:
        return np.zeros(1)
    quantiles = [NormalDist().inv_cdf((j + 0.5) / n_clinics) for j in range(n_clinics)]
    return rng.permutation(CLINIC_SD * np.asarray(quantiles))


def draw_clinics(rng: np.random.Generator, n_clinics: int) -> ClinicTable:
    """A population's clinic table, drawn from the start of the ``clinics`` stream."""
    c_eff = clinic_effects(rng, n_clinics)
    lo, hi = THERAPISTS_PER_CLINIC
    n_ther = rng.integers(lo, hi + 1, size=n_clinics)
    t_eff = THERAPIST_SD * rng.standard_normal(n_ther.sum())
    # Clinics differ in size too (real services do); Dirichlet shares.
    clinic_share = rng.dirichlet(np.full(n_clinics, 8.0))
    return ClinicTable(c_eff, n_ther, t_eff, clinic_share)


def draw_latents(
    streams: dict[str, np.random.Generator], n_clients: int, n_clinics: int, clinics: ClinicTable | None = None
) -> Latents:
    """Every client's latent course, demographics, clinic, therapist and planned length.

    ``clinics``: another cohort's clinic table (more clients of the same population) instead of the
    one drawn from this cohort's own ``clinics`` stream; the clients are assigned from that stream alike.
    """
    n, K = n_clients, MAX_SESSIONS
    k0 = np.arange(K)  # sessions since the first

    rng = streams["alliance"]
    z_alliance = rng.standard_normal(n)
    trend = ALLIANCE_TREND_MEAN + ALLIANCE_TREND_SD * rng.standard_normal(n)
    alliance = z_alliance[:, None] + trend[:, None] * k0[None, :]

    # Improvement shares variance with the alliance level, not with the alliance effect
    # on dropout, so r about 0.28 holds whatever alliance_effect is (brief).
    rng = streams["outcome"]
    rho = IMPROVEMENT_ALLIANCE_RHO
    g = IMPROVEMENT_MEAN + IMPROVEMENT_SD * (rho * z_alliance + math.sqrt(1 - rho**2) * rng.standard_normal(n))
    intake = rng.standard_normal(n)
    d = dose(K)
    change = g[:, None] * d[None, :]
    progress = (g - IMPROVEMENT_MEAN)[:, None] * d[None, :]

    rng = streams["demographics"]
    age = 18 + np.rint(62 * rng.beta(*AGE_BETA, size=n)).astype(np.int64)
    gender = np.asarray(GENDERS)[rng.choice(len(GENDERS), size=n, p=GENDER_P)]

    rng = streams["clinics"]
    own = draw_clinics(rng, n_clinics)  # drawn either way: clients are then assigned from the same stream position
    table = own if clinics is None else clinics
    n_ther, starts = table.therapists, table.first_therapist
    clinic = rng.choice(len(n_ther), size=n, p=table.clinic_share)
    therapist = starts[clinic] + np.floor(rng.random(n) * n_ther[clinic]).astype(np.int64)

    pmf = planned_length_pmf(K)
    planned_length = streams["length"].choice(K + 1, size=n, p=pmf)

    return Latents(
        alliance=alliance,
        intake=intake,
        change=change,
        progress=progress,
        age=age,
        gender=gender,
        clinic=clinic,
        therapist=therapist,
        therapist_clinic=np.repeat(np.arange(len(n_ther)), n_ther),
        therapist_rank=np.arange(n_ther.sum()) - np.repeat(starts, n_ther) + 1,
        group_effect=table.clinic_effect[clinic] + table.therapist_effect[therapist],
        planned_length=planned_length,
        clinics=table,
    )


def hazard_logit_without_intercept(
    latents: Latents, alliance_effect: float, outcome_effect: float, client_effects: bool = True
) -> np.ndarray:
    """Dropout logit after each session, all terms except b0 (n x K).

    ``client_effects=False`` drops age, clinic and therapist too; with both effects 0 the
    logit is then the session term alone, the same for every client (``--no-signal``).
    """
    age_term = BETA_AGE_PER_DECADE * (latents.age - AGE_CENTRE) / 10.0
    client_term = (age_term + latents.group_effect) if client_effects else np.zeros(latents.age.shape)
    return (
        time_effect(latents.alliance.shape[1])[None, :]
        + alliance_effect * BETA_ALLIANCE * latents.alliance
        + outcome_effect * BETA_PROGRESS * latents.progress
        + client_term[:, None]
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
    dropped = np.any(leaves, axis=1)
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
