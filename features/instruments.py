"""The instrument registry: every scale the project knows, as data.

Validation, features, clinical flags and the simulator all read this table, so
adding a scale is one entry here or one ``[[instruments]]`` table in the config
file (see ``features.config``). Numbers come from ``docs/domain.md`` section 2.

Clinical-side convention, used everywhere (flags, recovery, cutoff distance):
a score is on the clinical side when it is ``>= cutoff`` for a lower-is-better
scale (PHQ-9 >= 10 is caseness) and ``< cutoff`` for a higher-is-better one
(ORS below 25, SRS below 36).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["outcome", "alliance"]
LOINC = "http://loinc.org"


class InstrumentCode(BaseModel):
    """A code that names an instrument's total score in a record system (FHIR ``Coding``: system and code)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str = Field(min_length=1, description="the code system's URI, e.g. http://loinc.org")
    code: str = Field(min_length=1)


class Instrument(BaseModel):
    """One rating scale: its range, which way is better, and its clinical anchors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="column name in the data contract")
    name: str
    min: float
    max: float
    higher_is_better: bool
    role: Role
    cutoff: float | None = None
    reliable_change: float | None = Field(default=None, gt=0)
    source: str = ""
    # The codes that identify the instrument's total score in FHIR resources (serving/fhir): LOINC where
    # one exists, else a clinic's own code system (declared in the config). Scoring never reads them;
    # a model trained before they existed loads with none.
    codes: tuple[InstrumentCode, ...] = ()

    @model_validator(mode="after")
    def _check_range(self) -> Instrument:
        if not self.min < self.max:
            raise ValueError(f"instrument {self.key}: min must be below max")
        if self.cutoff is not None and not self.min <= self.cutoff <= self.max:
            raise ValueError(f"instrument {self.key}: cutoff must lie within [min, max]")
        return self

    @property
    def range_rule(self) -> str:
        """The rule a score out of range breaks, as every check words it (files, API, dashboard)."""
        return f"must be within {self.min:g}-{self.max:g} ({self.name})"

    def accepts(self, value: float) -> bool:
        return self.min <= value <= self.max

    def normalise(self, values):
        """Map raw scores so that higher is better, keeping the scale's own range.

        Lower-is-better scales are reflected (``min + max - v``): differences keep
        their size, only their sign turns, so change and reliable-change amounts
        read the same in normalised units.
        """
        if self.higher_is_better:
            return values
        return self.min + self.max - values

    def is_clinical(self, values):
        """True where a raw score lies on the clinical side of the cutoff (NaN stays False)."""
        values = np.asarray(values, dtype=float)
        if self.cutoff is None:
            return np.zeros(values.shape, dtype=bool)
        if self.higher_is_better:
            return values < self.cutoff
        return values >= self.cutoff


BUILTIN_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        key="ors",
        name="Outcome Rating Scale",
        min=0,
        max=40,
        higher_is_better=True,
        role="outcome",
        cutoff=25,
        reliable_change=5,
        source="Miller & Duncan; PCOMS norms (adult cutoff 25)",
    ),
    Instrument(
        key="srs",
        name="Session Rating Scale",
        min=0,
        max=40,
        higher_is_better=True,
        role="alliance",
        cutoff=36,
        reliable_change=1,
        source="PCOMS: below 36 or any drop of >= 1 from last session is flagged",
    ),
    Instrument(
        key="phq9",
        name="PHQ-9 depression",
        min=0,
        max=27,
        higher_is_better=False,
        role="outcome",
        cutoff=10,
        reliable_change=6,
        source="Kroenke et al. 2001; NHS Talking Therapies",
        codes=(InstrumentCode(system=LOINC, code="44261-6"),),  # PHQ-9 total score [Reported]
    ),
    Instrument(
        key="gad7",
        name="GAD-7 anxiety",
        min=0,
        max=21,
        higher_is_better=False,
        role="outcome",
        cutoff=8,
        reliable_change=4,
        source="Spitzer et al. 2006; NHS Talking Therapies",
        codes=(InstrumentCode(system=LOINC, code="70274-6"),),  # GAD-7 total score [Reported.PHQ]
    ),
    Instrument(
        key="oq45",
        name="Outcome Questionnaire-45",
        min=0,
        max=180,
        higher_is_better=False,
        role="outcome",
        cutoff=64,
        reliable_change=14,
        source="Lambert et al.; OQ-Analyst",
    ),
    Instrument(
        key="core10",
        name="CORE-10",
        min=0,
        max=40,
        higher_is_better=False,
        role="outcome",
        cutoff=11,
        reliable_change=6,
        source="Barkham et al. 2013",
    ),
    Instrument(
        key="wai_sr",
        name="Working Alliance Inventory, short revised",
        min=12,
        max=60,
        higher_is_better=True,
        role="alliance",
        cutoff=None,
        reliable_change=None,
        source="Hatcher & Gillaspy 2006",
    ),
    Instrument(
        key="hamd17",
        name="Hamilton Depression Rating Scale (17 items)",
        min=0,
        max=52,
        higher_is_better=False,
        role="outcome",
        cutoff=8,
        reliable_change=None,
        source="Hamilton 1960; <= 7 remission",
    ),
    Instrument(
        key="hama",
        name="Hamilton Anxiety Rating Scale",
        min=0,
        max=56,
        higher_is_better=False,
        role="outcome",
        cutoff=18,
        reliable_change=None,
        source="Hamilton 1959",
    ),
)


class InstrumentRegistry(Mapping[str, Instrument]):
    """Read-only mapping from column key to ``Instrument``, in declaration order."""

    def __init__(self, instruments: Iterable[Instrument]):
        self._by_key: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.key in self._by_key:
                raise ValueError(f"instrument {instrument.key} is declared twice")
            self._by_key[instrument.key] = instrument

    def __getitem__(self, key: str) -> Instrument:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def with_extra(self, extra: Iterable[Instrument]) -> InstrumentRegistry:
        """A new registry with user-declared instruments appended (keys must be new)."""
        return InstrumentRegistry([*self.values(), *extra])

    def union(self, instruments: Iterable[Instrument]) -> InstrumentRegistry:
        """This registry plus those of ``instruments`` whose key it lacks (its own entries win).

        Scoring uses it for the configured instruments plus any a model was
        trained with (declared in another config).
        """
        return self.with_extra([i for i in instruments if i.key not in self])

    def by_role(self, role: Role) -> list[Instrument]:
        return [i for i in self.values() if i.role == role]

    def present_in(self, columns: Iterable[str]) -> list[Instrument]:
        """Instruments whose key is among ``columns``, in registry order."""
        cols = set(columns)
        return [i for i in self.values() if i.key in cols]


def default_registry() -> InstrumentRegistry:
    return InstrumentRegistry(BUILTIN_INSTRUMENTS)
