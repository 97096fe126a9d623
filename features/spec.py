"""What a landmark feature row holds: the ``FeatureSpec`` and its feature groups.

The spec is fixed when a model is trained and travels inside it (``to_dict`` /
``from_dict``), so scoring new data always yields exactly the training columns,
in the training order, with the training categorical levels, even when a clinic's
new file lacks an instrument or a covariate (those columns are then all-NaN).

Feature groups exist so a clinic can compare feature sets (outcome only,
alliance only, attendance only, everything). ``landmark`` (the session number k
of the row) is in *every* feature set: the meaning of every other feature
depends on how far into treatment the row is. It is therefore listed in no group
and always added by ``columns_for``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dropout_risk.features.config import FeatureConfig
from dropout_risk.features.instruments import Instrument, InstrumentRegistry

LANDMARK = "landmark"
GROUP_NAMES = ("attendance", "outcome", "alliance", "covariates")

ATTENDANCE_FEATURES = ("days_in_treatment", "mean_gap_days", "last_gap_days", "missed_total", "missed_last")
OUTCOME_SUFFIXES = (
    "intake",
    "current",
    "sessions_since_obs",
    "change_intake",
    "change_last",
    "slope",
    "reliable_improvement",
    "reliable_deterioration",
    "dist_cutoff",
    "expected_dev",
    "off_track",
)
ALLIANCE_SUFFIXES = ("current", "min", "mean", "change_first", "change_last", "n_below_cutoff", "any_drop")

# The sessions file's columns besides the instruments' scores (the data contract, features.contract).
SESSION_ID_COLUMNS = ("client_id", "session_number", "session_date")
SESSION_OPTIONAL_COLUMNS = ("missed_since_last",)
# Episode columns that describe the episode rather than the client: never covariates.
EPISODE_NON_COVARIATES = ("client_id", "status", "clinic_id", "therapist_id", "ended_on")
# Columns of the feature frame that are not model inputs; a feature may not reuse these names.
ID_COLUMNS = ("client_id", "landmark", "session_date", "clinic_id", "therapist_id", "status", "label", "ended_on")

SPEC_FORMAT = 1


def outcome_columns(key: str) -> list[str]:
    return [f"{key}_{suffix}" for suffix in OUTCOME_SUFFIXES]


def alliance_columns(key: str) -> list[str]:
    return [f"{key}_{suffix}" for suffix in ALLIANCE_SUFFIXES]


@dataclass(frozen=True)
class FeatureSpec:
    """The definition of the model inputs, fixed at training time.

    ``instruments`` are those used, in registry order; ``categorical_covariates``
    maps each categorical covariate to the levels seen at fit time (sorted, as
    text); a value outside them becomes NaN at scoring time.
    """

    max_landmark: int
    off_track_z: float
    instruments: tuple[Instrument, ...]
    numeric_covariates: tuple[str, ...] = ()
    categorical_covariates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalise containers so specs built by hand, from JSON or by infer_spec compare equal.
        object.__setattr__(self, "instruments", tuple(self.instruments))
        object.__setattr__(self, "numeric_covariates", tuple(self.numeric_covariates))
        object.__setattr__(
            self,
            "categorical_covariates",
            {str(k): tuple(str(level) for level in v) for k, v in self.categorical_covariates.items()},
        )
        if self.max_landmark < 1:
            raise ValueError("max_landmark must be >= 1")
        if not self.off_track_z > 0:
            raise ValueError("off_track_z must be > 0")
        self._check_unique_columns()

    def _check_unique_columns(self) -> None:
        keys = [i.key for i in self.instruments]
        if len(set(keys)) != len(keys):
            raise ValueError("an instrument is listed twice in the feature spec")
        columns = self.feature_columns()
        clashes = sorted(c for c, n in Counter(columns).items() if n > 1)
        if clashes:
            raise ValueError(f"feature columns would be duplicated: {', '.join(clashes)}")
        reserved = sorted(set(columns[1:]) & set(ID_COLUMNS))
        if reserved:
            raise ValueError(f"covariates may not use the reserved column names: {', '.join(reserved)}")

    # --- instruments by role ------------------------------------------------------------

    @property
    def outcome_instruments(self) -> tuple[Instrument, ...]:
        return tuple(i for i in self.instruments if i.role == "outcome")

    @property
    def alliance_instruments(self) -> tuple[Instrument, ...]:
        return tuple(i for i in self.instruments if i.role == "alliance")

    # --- columns ------------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """Feature group -> its columns, in ``feature_columns`` order.

        ``landmark`` is in no group because it belongs to every feature set;
        ``columns_for`` adds it. A group with nothing to offer (no alliance
        instrument, say) maps to an empty list.
        """
        return {
            "attendance": list(ATTENDANCE_FEATURES),
            "outcome": [c for i in self.outcome_instruments for c in outcome_columns(i.key)],
            "alliance": [c for i in self.alliance_instruments for c in alliance_columns(i.key)],
            "covariates": [*self.numeric_covariates, *self.categorical_covariates],
        }

    def feature_columns(self) -> list[str]:
        """All model inputs: ``landmark``, then attendance, outcome, alliance, covariates."""
        groups = self.groups()
        return [LANDMARK, *(c for name in GROUP_NAMES for c in groups[name])]

    def columns_for(self, groups: Iterable[str]) -> list[str]:
        """``landmark`` plus the union of the named groups, in ``feature_columns`` order."""
        if isinstance(groups, str):
            groups = [groups]  # a lone name would otherwise be read letter by letter
        wanted = list(groups)
        by_group = self.groups()
        unknown = [g for g in wanted if g not in by_group]
        if unknown:
            raise ValueError(
                f"unknown feature group(s): {', '.join(map(str, unknown))} (known: {', '.join(GROUP_NAMES)})"
            )
        chosen = {c for g in wanted for c in by_group[g]}
        return [c for c in self.feature_columns() if c == LANDMARK or c in chosen]

    # --- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``json.dumps`` works on it)."""
        return {
            "format": SPEC_FORMAT,
            "max_landmark": int(self.max_landmark),
            "off_track_z": float(self.off_track_z),
            "instruments": [i.model_dump(mode="json") for i in self.instruments],
            "numeric_covariates": list(self.numeric_covariates),
            "categorical_covariates": {k: list(v) for k, v in self.categorical_covariates.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        fmt = data.get("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise ValueError(f"feature spec format {fmt} is not supported (expected {SPEC_FORMAT})")
        return cls(
            max_landmark=int(data["max_landmark"]),
            off_track_z=float(data["off_track_z"]),
            instruments=tuple(Instrument.model_validate(i) for i in data["instruments"]),
            numeric_covariates=tuple(data.get("numeric_covariates", ())),
            categorical_covariates={k: tuple(v) for k, v in data.get("categorical_covariates", {}).items()},
        )


# --- inference --------------------------------------------------------------------------


def instruments_with_data(sessions: pd.DataFrame, registry: InstrumentRegistry) -> tuple[Instrument, ...]:
    """Registry instruments that have a column in ``sessions`` with at least one score."""
    return tuple(i for i in registry.present_in(sessions.columns) if sessions[i.key].notna().any())


def is_numeric_covariate(column: pd.Series) -> bool:
    # bool counts as numeric (0/1), which is what a model wants from a yes/no covariate.
    return pd.api.types.is_numeric_dtype(column)


def is_usable_covariate(column: pd.Series) -> bool:
    # A date is not a category: as one it would give every client its own level
    # (an identifier the model could memorise), so date-like columns are left out.
    return not (pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column))


def level_text(value: object) -> str:
    """A category's text: a whole number reads the same whether it came as 2 or 2.0 ("2").

    A numeric code column read with a missing value becomes float; without this its levels
    would be "2.0" in one file and "2" in another (or in a JSON request).
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def level_texts(column: pd.Series) -> pd.Series:
    """``level_text`` of every value (missing values stay missing)."""
    if pd.api.types.is_float_dtype(column):
        return column.map(level_text, na_action="ignore")
    return column.astype(str).where(column.notna())


def categorical_levels(column: pd.Series) -> tuple[str, ...]:
    """Distinct non-missing values as text, sorted: stable across runs and JSON-safe."""
    return tuple(sorted(level_texts(column).dropna().unique()))


def infer_spec(
    sessions: pd.DataFrame, episodes: pd.DataFrame, registry: InstrumentRegistry, config: FeatureConfig
) -> FeatureSpec:
    """The spec a training run fits: instruments with data, covariates from the episode columns.

    Covariates are the episode columns other than ``client_id``, ``status``,
    ``clinic_id`` and ``therapist_id`` (date-like columns are skipped); numeric
    dtype means numeric covariate, anything else categorical, and a column named
    in ``config.categorical_covariates`` is categorical whatever its dtype.
    """
    numeric: list[str] = []
    categorical: dict[str, tuple[str, ...]] = {}
    declared = set(config.categorical_covariates)
    for name in episodes.columns:
        column = episodes[name]
        if name in EPISODE_NON_COVARIATES or not is_usable_covariate(column):
            continue
        if is_numeric_covariate(column) and name not in declared:
            numeric.append(str(name))
        else:
            categorical[str(name)] = categorical_levels(column)
    return FeatureSpec(
        max_landmark=config.max_landmark,
        off_track_z=config.off_track_z,
        instruments=instruments_with_data(sessions, registry),
        numeric_covariates=tuple(numeric),
        categorical_covariates=categorical,
    )
