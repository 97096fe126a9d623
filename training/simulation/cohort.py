"""Synthetic cohort simulator: the three files of the data contract, with a known true risk.

``simulate_cohort`` draws the latent process (``simulation.process``), lets
clients attend and leave, observes them (``simulation.observations``) and
returns the sessions, episodes and truth tables; ``write_cohort`` writes them
as byte-stable CSV files. The same config and seed give the same files.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dropout_risk.features.instruments import InstrumentRegistry, default_registry
from dropout_risk.features.private_files import private_dir, private_file
from dropout_risk.training.simulation.observations import (
    alliance_scores,
    apply_data_cut,
    missed_counts,
    outcome_scores,
    session_days,
)
from dropout_risk.training.simulation.parameters import ALLIANCE_NORMS, MAX_SESSIONS, OUTCOME_NORMS, TRUE_RISK_DECIMALS
from dropout_risk.training.simulation.process import (
    ClinicTable,
    Latents,
    calibrate_intercept,
    draw_latents,
    hazard_logit_without_intercept,
    planned_length_pmf,
    simulate_attendance,
    true_risk_matrix,
)


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
    no_signal: bool = Field(
        default=False,
        description="no predictor affects dropout (alliance, outcome, age, clinic, therapist, missed appointments): "
        "only the session number does",
    )
    intake_shift: float = Field(
        default=0.0,
        ge=-3,
        le=3,
        description="outcome scores made more severe by this many of the instrument's SDs (negative: milder), "
        "at intake and after: another clinic's population (monitoring tests)",
    )
    ongoing_fraction: float = Field(default=0.05, ge=0, lt=1)
    start_date: datetime.date = datetime.date(2023, 1, 2)
    intake_span_days: int = Field(default=730, ge=1)

    @model_validator(mode="after")
    def _no_signal_has_no_effects(self) -> SimulationConfig:
        named = {"alliance_effect", "outcome_effect"} & self.model_fields_set
        if self.no_signal and any(getattr(self, name) != 0 for name in named):
            raise ValueError(
                "no_signal sets every effect on dropout to 0: leave alliance_effect and outcome_effect out"
            )
        return self

    def hazard_effects(self) -> tuple[float, float, bool]:
        """(alliance effect, outcome effect, whether age, clinic and therapist act) on the dropout hazard."""
        if self.no_signal:
            return 0.0, 0.0, False
        return self.alliance_effect, self.outcome_effect, True


@dataclass(frozen=True)
class Cohort:
    """The three tables of the data contract (``session_date`` is an ISO string, as in the file)."""

    sessions: pd.DataFrame
    episodes: pd.DataFrame
    truth: pd.DataFrame


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


@dataclass(frozen=True)
class Population:
    """What a cohort shares with every other sample of its population: clinics, therapists and b0.

    Simulated on its own, a cohort draws its clinic table from its seed and tunes its intercept b0
    so that ITS clients' expected dropout rate is ``dropout_rate``: two seeds are two populations.
    ``simulate_cohort(..., population=population_of(training config))`` draws new clients of the
    training cohort's population instead (its clinic effects, therapists, clinic sizes and b0, the
    rest of the process being the same constants), e.g. a large independent cohort to check a model
    against. Its dropout rate is then the population's, near ``dropout_rate`` but not tuned to it.
    """

    clinics: ClinicTable
    intercept: float


def population_of(config: SimulationConfig) -> Population:
    """The population ``simulate_cohort(config)`` samples from (its clinic table and tuned b0)."""
    latents = draw_latents(_streams(config.seed), config.n_clients, config.n_clinics)
    base_logit = hazard_logit_without_intercept(latents, *config.hazard_effects())
    return Population(latents.clinics, calibrate_intercept(base_logit, latents.planned_length, config.dropout_rate))


def simulate_cohort(
    config: SimulationConfig, registry: InstrumentRegistry | None = None, population: Population | None = None
) -> Cohort:
    """Simulate one cohort (sessions, episodes, truth) from ``config``; pure and deterministic.

    ``population``: draw the clients from another cohort's population (``Population``); its clinic
    count must be ``config.n_clinics``.
    """
    registry = default_registry() if registry is None else registry
    streams = _streams(config.seed)
    if population is not None and len(population.clinics.therapists) != config.n_clinics:
        raise ValueError("the population has a different number of clinics from the config")
    clinics = None if population is None else population.clinics
    latents = draw_latents(streams, config.n_clients, config.n_clinics, clinics)
    base_logit = hazard_logit_without_intercept(latents, *config.hazard_effects())
    if population is None:
        logit_h = base_logit + calibrate_intercept(base_logit, latents.planned_length, config.dropout_rate)
    else:
        logit_h = base_logit + population.intercept

    n_sessions, dropped = simulate_attendance(streams["attendance"], logit_h, latents.planned_length)
    observed, ongoing = apply_data_cut(streams["data_cut"], n_sessions, config.ongoing_fraction)
    attended = np.arange(1, MAX_SESSIONS + 1)[None, :] <= observed[:, None]
    rows, cols = np.nonzero(attended)  # row-major: sorted by client, then session

    ids = _client_ids(config.n_clients)
    sessions = _sessions_table(streams, latents, logit_h, config, registry, ids[rows], rows, cols)
    status = np.where(ongoing, "ongoing", np.where(dropped, "dropout", "completed"))
    risk = true_risk_matrix(logit_h, planned_length_pmf(MAX_SESSIONS))
    truth = {
        "client_id": sessions["client_id"],
        "session_number": sessions["session_number"],
        "true_risk": np.round(risk[rows, cols], TRUE_RISK_DECIMALS),
    }
    episodes = _episodes_table(latents, ids, status, config.n_clinics)
    return Cohort(sessions=_frame(sessions), episodes=_frame(episodes), truth=_frame(truth))


def _sessions_table(
    streams: dict[str, np.random.Generator],
    latents: Latents,
    logit_h: np.ndarray,
    config: SimulationConfig,
    registry: InstrumentRegistry,
    client_ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> dict[str, np.ndarray]:
    """The attended sessions (``rows``, ``cols`` of the clients x sessions matrix) as contract columns."""
    missed = missed_counts(streams["missed"], logit_h)
    days = session_days(streams["dates"], missed, config.intake_span_days)
    dates = np.datetime64(config.start_date, "D") + days[rows, cols]
    sessions = {
        "client_id": client_ids,
        "session_number": (cols + 1).astype(np.int64),
        "session_date": np.datetime_as_string(dates, unit="D"),
        "missed_since_last": missed[rows, cols].astype(np.int64),
    }
    outcome, norm = registry[config.outcome], OUTCOME_NORMS[config.outcome]
    scores = outcome_scores(streams["outcome_noise"], latents, outcome, norm, config.intake_shift)
    sessions[outcome.key] = _format_scores(scores[rows, cols], norm.decimals)
    if config.alliance != "none":
        alliance, norm = registry[config.alliance], ALLIANCE_NORMS[config.alliance]
        scores = alliance_scores(streams["alliance_noise"], latents, alliance, norm)
        sessions[alliance.key] = _format_scores(scores[rows, cols], norm.decimals)
    return sessions


def _episodes_table(latents: Latents, ids: np.ndarray, status: np.ndarray, n_clinics: int) -> dict[str, np.ndarray]:
    clinic_labels = np.char.add("clinic", np.char.zfill((np.arange(n_clinics) + 1).astype(str), 2))
    therapist_labels = np.char.add(
        np.char.add(clinic_labels[latents.therapist_clinic], "-t"),
        np.char.zfill(latents.therapist_rank.astype(str), 2),
    )
    return {
        "client_id": ids,
        "status": status,
        "clinic_id": clinic_labels[latents.clinic],
        "therapist_id": therapist_labels[latents.therapist],
        "age": latents.age.astype(np.int64),
        "gender": latents.gender,
    }


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    # Plain Python strings (not numpy "<U" arrays) so pandas picks its own string dtype.
    return pd.DataFrame(
        {name: (values.astype(object) if values.dtype.kind == "U" else values) for name, values in columns.items()}
    )


def write_cohort(cohort: Cohort, out_dir: Path) -> dict[str, Path]:
    """Write sessions.csv, episodes.csv and truth.csv; fixed float formats keep files byte-stable."""
    out_dir = private_dir(out_dir)
    formats = {"sessions": "%.1f", "episodes": None, "truth": f"%.{TRUE_RISK_DECIMALS}f"}
    paths = {}
    for name, float_format in formats.items():
        path = private_file(out_dir / f"{name}.csv")  # synthetic, but shaped and handled like health data
        getattr(cohort, name).to_csv(path, index=False, float_format=float_format, lineterminator="\n")
        paths[name] = path
    return paths
