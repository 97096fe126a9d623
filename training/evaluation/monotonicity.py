"""Does the risk ever fall when a client's latest session gets worse? (issue 16)

For every client and every session k up to the model's last landmark, the
history is cut at k and session k alone is made worse in one of four standard
ways; the risk at k after the change is compared with the risk at k before it.
A violation is a risk that falls (by more than ``tolerance``): a clinician acts
on alliance, outcome and attendance, and a risk that drops when any of them
worsens cannot be trusted.

- ``alliance_down``: every alliance instrument ``step`` points worse on its own scale;
- ``outcome_worse``: every outcome instrument ``step`` points worse on its own scale;
- ``missed_more``: one more missed appointment before session k, same date;
- ``missed_more_week_later``: the same, and session k a week later (the missed slot takes time).

"Worse" is lower for a higher-is-better scale and higher for the others,
clipped to the scale's range. A history whose score cannot get worse (missing,
already at the worst end, no such instrument) is left out of that
perturbation's count. Results are reported over all sessions and from session 2
on: at session 1 there is no earlier score to compare against, so a model may
read a single low score differently.

Every truncated history is scored in one table (each (client, k) under an
internal id of its own), once as recorded and once per perturbation, so the
cost is five ``score_history`` calls whatever the number of clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dropout_risk.features.instruments import Instrument
from dropout_risk.features.spec import FeatureSpec

MISSED = "missed_since_last"
WEEK = pd.Timedelta(days=7)
# Joins a client id and a cut-off session into an id no real client id is likely to hold.
_SEPARATOR = "\x1f"
_ID = "client_id"
_CUT = "_cut"
_REQUIRED_COLUMNS = ("client_id", "session_number", "session_date")
JSON_DIGITS = 6


class HistoryScorer(Protocol):
    """A model that scores raw session histories (``DropoutRiskModel`` and ``CompiledModel`` both do)."""

    @property
    def spec(self) -> FeatureSpec: ...

    def score_history(self, sessions: pd.DataFrame, episodes: pd.DataFrame | None = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class PerturbationResult:
    """How often one perturbation lowered the risk, over all histories and from session 2 on."""

    name: str
    description: str
    histories: int
    violations: int
    histories_from_2: int
    violations_from_2: int

    @property
    def rate(self) -> float:
        return self.violations / self.histories if self.histories else 0.0

    @property
    def rate_from_2(self) -> float:
        return self.violations_from_2 / self.histories_from_2 if self.histories_from_2 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "histories": int(self.histories),
            "violations": int(self.violations),
            "rate": round(float(self.rate), JSON_DIGITS),
            "histories_from_2": int(self.histories_from_2),
            "violations_from_2": int(self.violations_from_2),
            "rate_from_2": round(float(self.rate_from_2), JSON_DIGITS),
        }


@dataclass(frozen=True)
class MonotonicityReport:
    """One result per perturbation, in the order they were run."""

    results: tuple[PerturbationResult, ...]
    tolerance: float

    @property
    def worst_rate(self) -> float:
        return max((r.rate for r in self.results), default=0.0)

    @property
    def worst_rate_from_2(self) -> float:
        return max((r.rate_from_2 for r in self.results), default=0.0)

    def violations_above(self, limit: float, *, from_2: bool = False) -> list[PerturbationResult]:
        """The perturbations whose violation rate (over all sessions, or from session 2) exceeds ``limit``."""
        return [r for r in self.results if (r.rate_from_2 if from_2 else r.rate) > limit]

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: counts as ints, rates rounded to ``JSON_DIGITS`` decimals."""
        return {
            "tolerance": float(self.tolerance),
            "worst_rate": round(float(self.worst_rate), JSON_DIGITS),
            "worst_rate_from_2": round(float(self.worst_rate_from_2), JSON_DIGITS),
            "perturbations": {r.name: r.to_json() for r in self.results},
        }

    def format_table(self) -> str:
        """The figures as a plain-text table, one perturbation a line."""
        lines = [f"{'perturbation':<24} {'histories':>9} {'violations':>10} {'rate':>7}   {'from session 2':>22}"]
        for r in self.results:
            lines.append(
                f"{r.name:<24} {r.histories:>9} {r.violations:>10} {r.rate:>7.1%}   "
                f"{r.violations_from_2:>6}/{r.histories_from_2:<6} = {r.rate_from_2:>6.1%}"
            )
            lines.append(f"  {r.description}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Histories:
    """Every truncated history in one sessions table, and where each one's latest session is."""

    table: pd.DataFrame  # client_id is the internal (client, k) id; sorted by it and session_number
    episodes: pd.DataFrame | None  # one row per internal id, covariates copied from the client's episode
    latest: np.ndarray  # bool per table row: the history's session k
    cut: np.ndarray  # k per table row


def monotonicity_violations(
    scorer: HistoryScorer,
    sessions: pd.DataFrame,
    episodes: pd.DataFrame | None = None,
    *,
    step: float = 5.0,
    tolerance: float = 1e-9,
) -> MonotonicityReport:
    """Count how often making session k worse lowers the risk at k, over every client and k <= max_landmark.

    ``sessions`` and ``episodes`` are validated, typed contract frames (as
    ``features.contract.validate_contract`` returns them).
    """
    if not step > 0:
        raise ValueError("step must be > 0")
    if not tolerance >= 0:
        raise ValueError("tolerance must be >= 0")
    spec = scorer.spec
    histories = _truncated_histories(sessions, episodes, spec.max_landmark)
    original = _risk_at_cut(scorer, histories, histories.table)
    results = [
        _score_perturbation(scorer, histories, original, tolerance, *_alliance_down(histories, spec, step)),
        _score_perturbation(scorer, histories, original, tolerance, *_outcome_worse(histories, spec, step)),
        _score_perturbation(scorer, histories, original, tolerance, *_missed_more(histories, week_later=False)),
        _score_perturbation(scorer, histories, original, tolerance, *_missed_more(histories, week_later=True)),
    ]
    return MonotonicityReport(results=tuple(results), tolerance=float(tolerance))


# --- the histories --------------------------------------------------------------------


def _truncated_histories(sessions: pd.DataFrame, episodes: pd.DataFrame | None, max_landmark: int) -> _Histories:
    """Sessions 1..k of every client for every k up to ``max_landmark`` (and the client's last session)."""
    missing = [c for c in _REQUIRED_COLUMNS if c not in sessions.columns]
    if missing:
        raise ValueError(f"sessions lack column(s) {', '.join(missing)}")
    numbers = sessions["session_number"].to_numpy()
    kept = sessions[numbers <= max_landmark]
    kept = kept.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)
    number = kept["session_number"].to_numpy(dtype=np.int64)
    last = kept.groupby("client_id", sort=False)["session_number"].transform("max").to_numpy(dtype=np.int64)
    # Session s belongs to the histories cut at s, s + 1, ..., the client's last kept session.
    copies = last - number + 1
    rows = np.repeat(np.arange(len(kept)), copies)
    starts = np.repeat(np.cumsum(copies) - copies, copies)
    cut = number[rows] + (np.arange(len(rows)) - starts)
    table = kept.iloc[rows].reset_index(drop=True)
    client = table["client_id"].astype("string")
    table[_ID] = client + _SEPARATOR + pd.Series(cut, dtype="int64").astype("string")
    order = np.lexsort((table["session_number"].to_numpy(), table[_ID].to_numpy(dtype=object)))
    table, cut, client = table.iloc[order].reset_index(drop=True), cut[order], client.iloc[order]
    return _Histories(
        table=table,
        episodes=_expanded_episodes(episodes, client.reset_index(drop=True), table[_ID]),
        latest=table["session_number"].to_numpy() == cut,
        cut=cut,
    )


def _expanded_episodes(episodes: pd.DataFrame | None, client: pd.Series, key: pd.Series) -> pd.DataFrame | None:
    """Each history's episode: its client's row under the history's id (covariates move the risk too)."""
    if episodes is None:
        return None
    pairs = pd.DataFrame({"_client": client.to_numpy(), _ID: key.to_numpy()}).drop_duplicates(_ID)
    source = episodes.rename(columns={"client_id": "_client"})
    source["_client"] = source["_client"].astype("string")
    pairs["_client"] = pairs["_client"].astype("string")
    expanded = pairs.merge(source, on="_client", how="inner", validate="many_to_one").drop(columns="_client")
    expanded[_ID] = expanded[_ID].astype("string")
    return expanded.reset_index(drop=True)


def _episodes_of(episodes: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    # The contract pairs every episode with sessions: keep only the histories being scored.
    return None if episodes is None else episodes[episodes[_ID].isin(ids)].reset_index(drop=True)


def _risk_at_cut(scorer: HistoryScorer, histories: _Histories, table: pd.DataFrame) -> pd.Series:
    """The risk at each history's session k, indexed by the history's id."""
    scored = scorer.score_history(table, histories.episodes)
    wanted = pd.DataFrame({_ID: table[_ID][histories.latest].to_numpy(), _CUT: histories.cut[histories.latest]})
    scored = scored.assign(**{_ID: scored[_ID].astype("string")})
    wanted[_ID] = wanted[_ID].astype("string")
    merged = wanted.merge(
        scored[[_ID, "session_number", "risk"]],
        left_on=[_ID, _CUT],
        right_on=[_ID, "session_number"],
        how="left",
        validate="one_to_one",
    )
    if merged["risk"].isna().any():
        raise ValueError("the scorer returned no risk for some histories' latest session")
    return pd.Series(merged["risk"].to_numpy(dtype=float), index=pd.Index(merged[_ID], name=_ID))


# --- the perturbations ----------------------------------------------------------------


def _instrument_names(instruments: Iterable[Instrument]) -> str:
    return ", ".join(i.key.upper().replace("_", "-") for i in instruments)


def _direction(instruments: tuple[Instrument, ...]) -> str:
    better = {i.higher_is_better for i in instruments}
    if better == {True}:
        return "lower"
    if better == {False}:
        return "higher"
    return "worse"


def _made_worse(
    histories: _Histories, instruments: tuple[Instrument, ...], step: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """The table with each instrument's score at session k ``step`` worse; which rows changed."""
    table = histories.table.copy()
    changed = np.zeros(len(table), dtype=bool)
    for instrument in instruments:
        if instrument.key not in table.columns:
            continue
        score = table[instrument.key].to_numpy(dtype=float)
        if instrument.higher_is_better:
            worse = np.maximum(score - step, instrument.min)
        else:
            worse = np.minimum(score + step, instrument.max)
        moves = histories.latest & ~np.isnan(score) & (worse != score)
        table[instrument.key] = np.where(moves, worse, score)
        changed |= moves
    return table, changed


def _role_worse(
    histories: _Histories, instruments: tuple[Instrument, ...], name: str, what: str, step: float
) -> tuple[str, str, pd.DataFrame, np.ndarray]:
    if not instruments:
        return name, f"{what}: the model has no {what} instrument", histories.table, np.zeros(0, dtype=bool)
    description = (
        f"{what} {step:g} points {_direction(instruments)} ({_instrument_names(instruments)}) at the latest session"
    )
    return name, description, *_made_worse(histories, instruments, step)


def _alliance_down(histories: _Histories, spec: FeatureSpec, step: float) -> tuple[str, str, pd.DataFrame, np.ndarray]:
    return _role_worse(histories, spec.alliance_instruments, "alliance_down", "alliance", step)


def _outcome_worse(histories: _Histories, spec: FeatureSpec, step: float) -> tuple[str, str, pd.DataFrame, np.ndarray]:
    return _role_worse(histories, spec.outcome_instruments, "outcome_worse", "outcome", step)


def _missed_more(histories: _Histories, *, week_later: bool) -> tuple[str, str, pd.DataFrame, np.ndarray]:
    table = histories.table.copy()
    missed = table[MISSED].to_numpy(dtype=float) if MISSED in table else np.full(len(table), np.nan)
    table[MISSED] = np.where(histories.latest, np.nan_to_num(missed, nan=0.0) + 1, missed)
    if week_later:
        table["session_date"] = table["session_date"].where(~histories.latest, table["session_date"] + WEEK)
        return (
            "missed_more_week_later",
            "one more missed appointment before the latest session, and that session 7 days later",
            table,
            histories.latest,
        )
    return "missed_more", "one more missed appointment before the latest session, same date", table, histories.latest


def _score_perturbation(
    scorer: HistoryScorer,
    histories: _Histories,
    original: pd.Series,
    tolerance: float,
    name: str,
    description: str,
    table: pd.DataFrame,
    changed_rows: np.ndarray,
) -> PerturbationResult:
    """Score the perturbed histories (only those that changed) and count the risks that fell."""
    if not changed_rows.any():
        return PerturbationResult(name, description, 0, 0, 0, 0)
    changed_ids = pd.unique(table[_ID][changed_rows])
    in_changed = table[_ID].isin(changed_ids).to_numpy()
    subset = _Histories(
        table=table[in_changed].reset_index(drop=True),
        episodes=_episodes_of(histories.episodes, changed_ids),
        latest=histories.latest[in_changed],
        cut=histories.cut[in_changed],
    )
    perturbed = _risk_at_cut(scorer, subset, subset.table)
    before = original.reindex(perturbed.index).to_numpy()
    fell = perturbed.to_numpy() < before - tolerance
    from_2 = subset.cut[subset.latest] >= 2
    # _risk_at_cut returns histories in the order of their latest rows, the same order as from_2.
    return PerturbationResult(
        name=name,
        description=description,
        histories=int(len(perturbed)),
        violations=int(fell.sum()),
        histories_from_2=int(from_2.sum()),
        violations_from_2=int((fell & from_2).sum()),
    )
