"""``simulate``: a cohort with a known answer, written as the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dropout_risk.cli.common import ConfigOption, console, fail, settings, user_errors

AllianceEffectOption = Annotated[
    float | None,
    typer.Option("--alliance-effect", min=0, help="How strongly alliance drives dropout (0 = not at all; default 1)."),
]
OutcomeEffectOption = Annotated[
    float | None,
    typer.Option(
        "--outcome-effect", min=0, help="How strongly outcome progress drives dropout (0 = not at all; default 1)."
    ),
]
NoSignalOption = Annotated[
    bool,
    typer.Option(
        "--no-signal",
        help="No predictor affects dropout (scores, age, clinic, therapist, missed appointments): only the "
        "session number does, so truth.csv's risk depends on the session alone. For checking that an "
        "evaluation finds nothing where there is nothing.",
    ),
]


def simulate(
    clients: Annotated[int, typer.Option("--clients", min=1, help="Number of clients.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for sessions.csv, episodes.csv, truth.csv.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical files.")] = 0,
    dropout_rate: Annotated[float, typer.Option("--dropout-rate", min=0.01, max=0.99)] = 0.25,
    outcome: Annotated[Literal["ors", "phq9", "oq45", "core10"], typer.Option("--outcome")] = "ors",
    alliance: Annotated[Literal["srs", "wai_sr", "none"], typer.Option("--alliance")] = "srs",
    clinics: Annotated[int, typer.Option("--clinics", min=1)] = 5,
    alliance_effect: AllianceEffectOption = None,
    outcome_effect: OutcomeEffectOption = None,
    no_signal: NoSignalOption = False,
    config: ConfigOption = None,
) -> None:
    """Simulate a cohort reproducing the published dropout statistics (docs/domain.md section 6)."""
    from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort

    registry = settings(config).registry()
    effects = {
        name: value
        for name, value in (("alliance_effect", alliance_effect), ("outcome_effect", outcome_effect))
        if value is not None
    }
    if no_signal and any(effects.values()):
        fail("--no-signal sets every effect on dropout to 0: leave out --alliance-effect and --outcome-effect")
    with user_errors():
        sim = SimulationConfig.model_validate(
            {
                "n_clients": clients,
                "seed": seed,
                "dropout_rate": dropout_rate,
                "outcome": outcome,
                "alliance": alliance,
                "n_clinics": clinics,
                "no_signal": no_signal,
                **effects,
            }
        )
    with console.status(f"simulating {clients:,} clients"):
        cohort = simulate_cohort(sim, registry)
        paths = write_cohort(cohort, out)
    status = cohort.episodes["status"].value_counts()
    ended = status.get("dropout", 0) + status.get("completed", 0)
    console.print(f"[bold green]wrote[/] {', '.join(str(p) for p in paths.values())}")
    console.print(
        f"  {clients:,} clients, {len(cohort.sessions):,} sessions, "
        f"dropout {status.get('dropout', 0) / max(ended, 1):.1%} of ended episodes"
    )
    if no_signal:
        console.print("  no signal: only the session number affects dropout")
