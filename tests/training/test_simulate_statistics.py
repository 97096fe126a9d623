"""The simulator reproduces the published numbers it was built on (sources in the table below).

One seed-fixed 5,000-client cohort (module fixture) carries most checks; a few
variants (dropout_rate 0.40, alliance_effect 0, other instruments) get their own
5,000-client cohorts.  Tolerances are about 2-3 sampling SEs at n = 5,000 on top of
the published ranges, so a broken generating process fails while seed noise
does not.

| statistic (ended episodes unless noted)                          | target        | tolerance          | source                    |
|------------------------------------------------------------------|---------------|--------------------|---------------------------|
| dropout rate, default                                            | 0.25          | +- 0.025           | Swift & Greenberg 2012    |
| dropout rate, dropout_rate=0.40                                  | 0.40          | +- 0.03            | range 15-45%              |
| share of dropouts whose last session is <= 4                     | >= 0.5        | lower bound        | Anderson et al. 2019      |
| per-session dropout hazard, sessions 1-4                         | decreasing    | strict             | front-loaded              |
| completers' mean sessions attended                               | 8             | +- 1               | NHS 6.9-7.9               |
| Cohen's d, client mean SRS, completers - dropouts (pooled SD)    | 0.55          | +- 0.12            | Sharf et al. 2010         |
| r, client mean SRS vs ORS change intake->last (>= 3 sessions)    | 0.28          | +- 0.08            | Fluckiger et al. 2018     |
| ORS intake mean / SD (all clients)                               | 19 / 7        | +- 1 / +- 1        | PCOMS norms               |
| SRS mean / SD (all session rows)                                 | 36.5 / 3.5    | +- 0.8 / +- 0.7    | PCOMS norms               |
| share of SRS rows at the 40 ceiling                              | >= 0.05       | lower bound        | "skewed to ceiling"       |
| completers reliably recovered (Jacobson-Truax, registry anchors) | 0.50          | +- 0.07            | NHS Talking Therapies     |
| dropout rate age < 30 minus age >= 50                            | >= 0.05       | lower bound        | younger clients           |
| mean missed_since_last, last two sessions, dropouts / completers | >= 1.5        | lower bound        | brief: missed before drop |
| clinics differ: chi-square clinic x status                       | p < 0.001     | upper bound        | brief                     |
| alliance_effect=0: |d|  (and r kept)                            | < 0.1 (0.28)  | bound (+- 0.08)    | brief                     |
| mean true_risk at session 1 vs realised dropout rate             | equal         | +- 0.03            | truth calibration         |
| AUC of true_risk at landmark 1                                   | > 0.6         | lower bound        | intake-only 0.60-0.70     |
| PHQ-9 / OQ-45 / CORE-10 intake mean                              | 16 / 80 / 20  | +- 1.5 / 5 / 1.5   | approximate norms         |
| WAI-SR mean / SD                                                 | 48 / 8        | +- 2 / +- 1.5      | Hatcher & Gillaspy        |
| recovered completers on PHQ-9 / OQ-45 / CORE-10                  | about 0.5     | +- 0.12            | "roughly similar"         |

Known noise: the per-session hazard at sessions 3 and 4 differs by about 4 SEs at
n = 5,000, so the strict ordering holds for nearly every seed but not all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dropout_risk.features.instruments import default_registry
from dropout_risk.training.simulation.cohort import Cohort, SimulationConfig, simulate_cohort

pytestmark = pytest.mark.slow

N_CLIENTS = 5_000
SEED = 2024
REGISTRY = default_registry()


# ------------------------------------------------------------------ helpers


def client_table(cohort: Cohort, outcome: str, alliance: str | None) -> pd.DataFrame:
    """One row per client: status, age, clinic, sessions, intake/last outcome, mean alliance."""
    s = cohort.sessions
    g = s.groupby("client_id", sort=True)
    table = pd.DataFrame(
        {
            "n_sessions": g["session_number"].max(),
            "intake": g[outcome].first(),
            "last": g[outcome].last(),
            "missed_last_two": g.tail(2).groupby("client_id")["missed_since_last"].mean(),
        }
    )
    if alliance is not None:
        table["alliance_mean"] = g[alliance].mean()
    episodes = cohort.episodes.set_index("client_id")
    return table.join(episodes[["status", "age", "clinic_id"]], how="inner")


def ended(table: pd.DataFrame) -> pd.DataFrame:
    out = table[table["status"] != "ongoing"].copy()
    out["dropout"] = out["status"].eq("dropout")
    return out


def cohens_d(a: pd.Series, b: pd.Series) -> float:
    pooled = ((len(a) - 1) * a.var() + (len(b) - 1) * b.var()) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / math.sqrt(pooled))


def alliance_dropout_d(table: pd.DataFrame) -> float:
    t = ended(table)
    return cohens_d(t.loc[~t["dropout"], "alliance_mean"], t.loc[t["dropout"], "alliance_mean"])


def alliance_outcome_r(table: pd.DataFrame, outcome: str) -> float:
    t = table[table["n_sessions"] >= 3]
    change = REGISTRY[outcome].normalise(t["last"]) - REGISTRY[outcome].normalise(t["intake"])
    return float(np.corrcoef(t["alliance_mean"], change)[0, 1])


def recovered_share(table: pd.DataFrame, outcome: str) -> float:
    inst = REGISTRY[outcome]
    t = ended(table)
    t = t[~t["dropout"]]
    improved = inst.normalise(t["last"]) - inst.normalise(t["intake"]) >= inst.reliable_change
    healthy = ~inst.is_clinical(t["last"].to_numpy())
    return float((improved.to_numpy() & healthy).mean())


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with midranks for ties."""
    labels = np.asarray(labels, dtype=bool)
    ranks = pd.Series(np.asarray(scores, dtype=float)).rank().to_numpy()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def chi_square_sf(x: float, df: int) -> float:
    """Upper tail of the chi-square distribution (series for the lower regularised gamma)."""
    a, z = df / 2.0, x / 2.0
    term = total = 1.0 / a
    n = 0
    while term > 1e-17 * total:
        n += 1
        term *= z / (a + n)
        total += term
    log_lower = a * math.log(z) - z - math.lgamma(a) + math.log(total)
    return max(0.0, -math.expm1(log_lower))


def chi_square_independence(counts: np.ndarray) -> tuple[float, float]:
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    df = (counts.shape[0] - 1) * (counts.shape[1] - 1)
    return stat, chi_square_sf(stat, df)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cohort(cohorts) -> Cohort:
    return cohorts.simulate(N_CLIENTS, seed=SEED)


@pytest.fixture(scope="module")
def clients(cohort) -> pd.DataFrame:
    return client_table(cohort, "ors", "srs")


# ------------------------------------------------------------------ helper self-checks


def test_chi_square_sf_matches_known_quantiles():
    # Textbook critical values: chi2(4) 0.95 -> 9.488, 0.999 -> 18.467; chi2(1) 0.95 -> 3.841.
    assert chi_square_sf(9.488, 4) == pytest.approx(0.05, abs=1e-4)
    assert chi_square_sf(18.467, 4) == pytest.approx(0.001, abs=1e-5)
    assert chi_square_sf(3.841, 1) == pytest.approx(0.05, abs=1e-4)


def test_auc_helper_on_known_orderings():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


# ------------------------------------------------------------------ dropout rate and timing


def test_dropout_rate_among_ended_episodes(clients):
    assert ended(clients)["dropout"].mean() == pytest.approx(0.25, abs=0.025)


def test_dropout_rate_follows_config():
    table = client_table(
        simulate_cohort(SimulationConfig(n_clients=N_CLIENTS, seed=SEED, dropout_rate=0.40)), "ors", "srs"
    )
    assert ended(table)["dropout"].mean() == pytest.approx(0.40, abs=0.03)


def test_most_dropouts_leave_within_four_sessions(clients):
    t = ended(clients)
    assert (t.loc[t["dropout"], "n_sessions"] <= 4).mean() >= 0.5


def test_dropout_hazard_falls_over_sessions_one_to_four(clients):
    t = ended(clients)
    hazards = []
    for k in range(1, 5):
        leaves_after_k = t["dropout"] & (t["n_sessions"] == k)
        at_risk = (t["n_sessions"] > k) | leaves_after_k  # completers ending at k were never at risk
        hazards.append(leaves_after_k.sum() / at_risk.sum())
    assert all(np.diff(hazards) < 0), hazards


def test_completers_attend_about_eight_sessions(clients):
    t = ended(clients)
    assert t.loc[~t["dropout"], "n_sessions"].mean() == pytest.approx(8.0, abs=1.0)


# ------------------------------------------------------------------ alliance and outcome


def test_alliance_separates_completers_from_dropouts(clients):
    assert alliance_dropout_d(clients) == pytest.approx(0.55, abs=0.12)


def test_alliance_outcome_correlation(clients):
    assert alliance_outcome_r(clients, "ors") == pytest.approx(0.28, abs=0.08)


def test_alliance_effect_zero_removes_the_dropout_gap_but_keeps_r():
    table = client_table(
        simulate_cohort(SimulationConfig(n_clients=N_CLIENTS, seed=SEED, alliance_effect=0.0)), "ors", "srs"
    )
    assert abs(alliance_dropout_d(table)) < 0.1
    assert alliance_outcome_r(table, "ors") == pytest.approx(0.28, abs=0.08)


def test_ors_intake_norms(clients):
    assert clients["intake"].mean() == pytest.approx(19.0, abs=1.0)
    assert clients["intake"].std() == pytest.approx(7.0, abs=1.0)


def test_srs_norms_and_ceiling(cohort):
    srs = cohort.sessions["srs"]
    assert srs.mean() == pytest.approx(36.5, abs=0.8)
    assert srs.std() == pytest.approx(3.5, abs=0.7)
    assert (srs == 40).mean() >= 0.05


def test_about_half_of_completers_recover(clients):
    assert recovered_share(clients, "ors") == pytest.approx(0.50, abs=0.07)


# ------------------------------------------------------------------ who drops out


def test_younger_clients_drop_out_more(clients):
    t = ended(clients)
    young = t.loc[t["age"] < 30, "dropout"].mean()
    older = t.loc[t["age"] >= 50, "dropout"].mean()
    assert young - older >= 0.05


def test_missed_appointments_precede_dropout(clients):
    t = ended(clients)
    ratio = t.loc[t["dropout"], "missed_last_two"].mean() / t.loc[~t["dropout"], "missed_last_two"].mean()
    assert ratio >= 1.5


def test_clinics_differ_in_dropout(clients):
    t = ended(clients)
    counts = pd.crosstab(t["clinic_id"], t["dropout"]).to_numpy()
    assert counts.shape == (5, 2)
    _, p_value = chi_square_independence(counts)
    assert p_value < 0.001


# ------------------------------------------------------------------ the truth itself


def test_true_risk_at_session_one_matches_realised_rate(cohort, clients):
    t = ended(clients)
    first = cohort.truth[cohort.truth["session_number"] == 1].set_index("client_id")["true_risk"]
    assert first.loc[t.index].mean() == pytest.approx(t["dropout"].mean(), abs=0.03)


def test_true_risk_discriminates_at_landmark_one(cohort, clients):
    t = ended(clients)
    first = cohort.truth[cohort.truth["session_number"] == 1].set_index("client_id")["true_risk"]
    assert auc(t["dropout"].to_numpy(), first.loc[t.index].to_numpy()) > 0.6


# ------------------------------------------------------------------ other instruments

INTAKE_NORMS = {"phq9": (16.0, 1.5), "oq45": (80.0, 5.0), "core10": (20.0, 1.5)}


@pytest.mark.parametrize("outcome", sorted(INTAKE_NORMS))
def test_other_outcome_scales(outcome):
    inst = REGISTRY[outcome]
    cohort = simulate_cohort(SimulationConfig(n_clients=N_CLIENTS, seed=SEED, outcome=outcome, alliance="wai_sr"))
    scores = cohort.sessions[outcome]
    assert scores.between(inst.min, inst.max).all()
    assert (scores == scores.round()).all()
    table = client_table(cohort, outcome, "wai_sr")
    mean, tol = INTAKE_NORMS[outcome]
    assert table["intake"].mean() == pytest.approx(mean, abs=tol)
    assert recovered_share(table, outcome) == pytest.approx(0.5, abs=0.12)
    # Lower-is-better scales fall with treatment: completers end below intake on average.
    t = ended(table)
    assert (t.loc[~t["dropout"], "last"] < t.loc[~t["dropout"], "intake"]).mean() > 0.6


def test_wai_sr_norms():
    inst = REGISTRY["wai_sr"]
    wai = simulate_cohort(SimulationConfig(n_clients=N_CLIENTS, seed=SEED, alliance="wai_sr")).sessions["wai_sr"]
    assert wai.between(inst.min, inst.max).all()
    assert wai.mean() == pytest.approx(48.0, abs=2.0)
    assert wai.std() == pytest.approx(8.0, abs=1.5)
