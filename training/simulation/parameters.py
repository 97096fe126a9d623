"""The simulator's calibrated constants and the instruments' score norms.

Tuned on seeds 0-9 at 5,000 clients (and 20,000-50,000 for the small effects)
so the statistics in tests/training/test_simulate_statistics.py sit on the
domain.md section 6 targets on average, not just for one seed. What each one
drives is in ``simulation.process`` (the latent process) and
``simulation.observations`` (scores, dates, the data cut).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Longest planned treatment; also the width of the clients x sessions matrix.
MAX_SESSIONS = 26
#: Planned length L = 2 + NegBin(size, mean), truncated at MAX_SESSIONS.  Completers'
#: mean session count comes out near 8 (NHS Talking Therapies 6.9-7.9, domain.md s6);
#: E[L] sits above 8 because long plans give more chances to leave early.
LENGTH_MIN = 2
LENGTH_NB_SIZE = 2.0
LENGTH_NB_MEAN = 6.6

#: Front-loaded session effect on the dropout logit: time_k = step * max(flat_from - k, 0),
#: falling by ``step`` per session until session ``flat_from`` and flat after, so most
#: dropouts leave within sessions 1-4 (Anderson et al. 2019, domain.md s6) and the
#: per-session hazard visibly falls over sessions 1-4.
TIME_STEP = 0.45
TIME_FLAT_FROM = 5

#: Dropout-logit slopes at alliance_effect = outcome_effect = 1 (standardised latents).
#: beta_a gives alliance-dropout d about 0.55 (Sharf et al. 2010).  beta_o is modest
#: because progress shares variance with alliance (rho below): a larger slope would
#: leak an alliance-dropout gap into alliance_effect = 0 (d there is about 0.04).
#: beta_age is per decade from age 40: younger clients leave more (Swift & Greenberg 2012).
BETA_ALLIANCE = -0.5
BETA_PROGRESS = -0.25
BETA_AGE_PER_DECADE = -0.2
AGE_CENTRE = 40.0

#: Clinic effects are the normal quantiles of this SD (shuffled), so clinics always
#: differ; therapist effects are small and random.
CLINIC_SD = 0.35
THERAPISTS_PER_CLINIC = (2, 6)  # inclusive range
THERAPIST_SD = 0.15

#: Alliance: latent level N(0, 1) plus a per-client trend per session (mean, SD).  The
#: mean trend is 0 on purpose: a rising average would give completers (who stay longer)
#: a higher mean alliance even when alliance does not drive dropout.
ALLIANCE_TREND_MEAN = 0.0
ALLIANCE_TREND_SD = 0.06
#: Measurement noise SD on the standardised alliance: reliability 1 / (1 + 0.35^2) = 0.89,
#: close to the SRS internal consistency (alpha 0.88, Duncan et al. 2003).
ALLIANCE_NOISE_SD = 0.35

#: Improvement: g = mean + sd * (rho * z_a + sqrt(1 - rho^2) * e), in intake SDs at full
#: dose.  rho gives the observed alliance-outcome r about 0.28 (Fluckiger et al. 2018).
IMPROVEMENT_MEAN = 1.75
IMPROVEMENT_SD = 0.75
IMPROVEMENT_ALLIANCE_RHO = 0.5
#: dose(k) = 1 - exp(-(k-1)/tau): most change comes in the first sessions.
DOSE_TAU = 4.0
#: Per-score reliability of the outcome measure (ORS test-retest ~0.8-0.85).
OUTCOME_RELIABILITY = 0.85

#: Missed appointments before session k ~ Poisson(base * exp(slope * (logit h_ik - ref)))
#: so clients at risk miss more (the "missed sessions before dropout" signal).
MISSED_BASE = 0.35
MISSED_SLOPE = 0.6
MISSED_REF_LOGIT = math.log(0.1 / 0.9)
MISSED_MAX_RATE = 3.0
SESSION_JITTER_DAYS = 2  # sessions are weekly +- this many days

#: Age = 18 + 62 * Beta(a, b): adult outpatients, mean about 38, long right tail.
AGE_BETA = (2.0, 4.3)
GENDERS = ("F", "M", "other")
GENDER_P = (0.65, 0.33, 0.02)

#: truth.csv precision; fixed so files are byte-stable.
TRUE_RISK_DECIMALS = 6


@dataclass(frozen=True)
class ScaleNorm:
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
OUTCOME_NORMS: dict[str, ScaleNorm] = {
    "ors": ScaleNorm(mean=19.0, sd=7.0, decimals=1, responsiveness=1.0),
    "phq9": ScaleNorm(mean=16.0, sd=5.0, decimals=0, responsiveness=1.45),
    "oq45": ScaleNorm(mean=80.0, sd=22.0, decimals=0, responsiveness=0.95),
    "core10": ScaleNorm(mean=20.0, sd=7.0, decimals=0, responsiveness=1.4),
}
#: Alliance norms: SRS mean about 36.5, SD about 3.5, piled against the 40 ceiling
#: (PCOMS norms); WAI-SR mean about 48, SD about 8 on 12-60 (Hatcher & Gillaspy 2006).
#: A two-piece normal (wider below the centre) gives the left skew before clipping.
ALLIANCE_NORMS: dict[str, ScaleNorm] = {
    "srs": ScaleNorm(mean=37.4, sd=5.0, sd_above=2.4, decimals=1),
    "wai_sr": ScaleNorm(mean=48.2, sd=8.8, sd_above=7.5, decimals=0),
}
