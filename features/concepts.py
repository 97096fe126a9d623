"""The model's inputs: one feature per clinical concept, each with the direction the literature gives it.

The landmark table (``FeatureSpec.feature_columns``) holds many descriptive values per instrument, for
the reasons, flags and dashboard to quote. Several are near-duplicates (current level, distance to the
cutoff, change since intake and distance from the expected trajectory all move together), and a model
fed all of them splits one concept's effect between them arbitrarily, so single contributions read
backwards and a worse score can lower the risk. The model therefore sees only these:

- ``landmark``: the session number (a category for the logistic model): context, not a reason;
- attendance: missed appointments so far and since the last session (more raises the risk);
- outcome: per outcome instrument, the distance of the latest score from the expected trajectory for
  the client's intake score (further below raises the risk);
- alliance: per alliance instrument, the latest score and the mean so far (lower raises the risk);
- covariates: as given, no declared direction.

Scores are normalised so that higher is better before features are built, so every score feature
lowers the risk as it rises, whichever way the raw scale runs (a user-declared instrument gets its
direction from ``higher_is_better`` and ``role`` in the same way). Sources: docs/domain.md section 7.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from dropout_risk.features.spec import GROUP_NAMES, LANDMARK, FeatureSpec

Concept = Literal["session", "attendance", "outcome", "alliance", "covariates"]
CONCEPTS: tuple[Concept, ...] = ("session", "attendance", "outcome", "alliance", "covariates")
# The concepts a risk is explained by: the session number is the reference, not a reason.
EXPLAINED: tuple[Concept, ...] = ("attendance", "outcome", "alliance", "covariates")

ATTENDANCE_MODEL = ("missed_total", "missed_last")
OUTCOME_MODEL = ("expected_dev",)
ALLIANCE_MODEL = ("current", "mean")

# +1: a higher value raises the risk; -1: lowers it; 0: no declared direction.
RAISES, LOWERS, UNDECLARED = 1, -1, 0


def model_groups(spec: FeatureSpec) -> dict[str, list[str]]:
    """Feature group -> its model columns (``landmark`` is in every set, so in no group)."""
    return {
        "attendance": list(ATTENDANCE_MODEL),
        "outcome": [f"{i.key}_{s}" for i in spec.outcome_instruments for s in OUTCOME_MODEL],
        "alliance": [f"{i.key}_{s}" for i in spec.alliance_instruments for s in ALLIANCE_MODEL],
        "covariates": [*spec.numeric_covariates, *spec.categorical_covariates],
    }


def model_columns(spec: FeatureSpec, groups: Iterable[str] = GROUP_NAMES) -> list[str]:
    """``landmark`` plus the model columns of the named groups, in group order."""
    if isinstance(groups, str):
        groups = [groups]  # a lone name would otherwise be read letter by letter
    wanted = list(groups)
    by_group = model_groups(spec)
    unknown = [g for g in wanted if g not in by_group]
    if unknown:
        raise ValueError(f"unknown feature group(s): {', '.join(map(str, unknown))} (known: {', '.join(GROUP_NAMES)})")
    return [LANDMARK, *(c for name in GROUP_NAMES if name in wanted for c in by_group[name])]


def concept_of(spec: FeatureSpec, column: str) -> Concept:
    """The concept a landmark-table column belongs to (any column, not only model columns)."""
    if column == LANDMARK:
        return "session"
    for group, columns in spec.groups().items():
        if column in columns:
            return group  # type: ignore[return-value]  # the group names are the other concepts
    raise ValueError(f"{column!r} is not a column of this feature spec")


def direction(spec: FeatureSpec, column: str) -> int:
    """The declared direction of a model column: +1 raises the risk as it rises, -1 lowers, 0 none."""
    if column in ATTENDANCE_MODEL:
        return RAISES
    scored = model_groups(spec)
    if column in scored["outcome"] or column in scored["alliance"]:
        return LOWERS  # normalised scores: higher is better on every instrument
    concept_of(spec, column)  # an unknown column is an error, not "undeclared"
    return UNDECLARED  # the session number, covariates, and descriptive columns a researcher names


def directions(spec: FeatureSpec, columns: Iterable[str]) -> dict[str, int]:
    return {column: direction(spec, column) for column in columns}
