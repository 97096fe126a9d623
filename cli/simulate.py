"""``simulate``: a cohort with a known answer, written as the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dropout_risk.cli.common import ConfigOption, console, settings, user_errors


def simulate(
    clients: Annotated[int, typer.Option("--clients", min=1, help="Number of clients.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for sessions.csv, episodes.csv, truth.csv.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical files.")] = 0,
    dropout_rate: Annotated[float, typer.Option("--dropout-rate", min=0.01, max=0.99)] = 0.25,
    outcome: Annotated[Literal["ors", "phq9", "oq45", "core10"], typer.Option("--outcome")] = "ors",
    alliance: Annotated[Literal["srs", "wai_sr", "none"], typer.Option("--alliance")] = "srs",
    clinics: Annotated[int, typer.Option("--clinics", min=1)] = 5,
    alliance_effect: Annotated[
        float,
        typer.Option(
            "--alliance-effect", min=0, help="How strongly alliance drives dropout (0 = not at all, 1 = default)."
        ),
    ] = 1.0,
    outcome_effect: Annotated[
        float,
        typer.Option("--outcome-effect", min=0, help="How strongly outcome progress drives dropout (0 = not at all)."),
    ] = 1.0,
    config: ConfigOption = None,
) -> None:
    """Simulate a cohort reproducing the published dropout statistics (docs/domain.md section 6)."""
    from dropout_risk.training.simulation.cohort import SimulationConfig, simulate_cohort, write_cohort

    registry = settings(config).registry()
    with user_errors():
        sim = SimulationConfig(
            n_clients=clients,
            seed=seed,
            dropout_rate=dropout_rate,
            outcome=outcome,
            alliance=alliance,
            n_clinics=clinics,
            alliance_effect=alliance_effect,
            outcome_effect=outcome_effect,
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
