"""Which instrument a FHIR ``Coding`` names: the registry's codes plus the clinic's ``[[fhir.codes]]``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.serving.settings import ClinicCode


@dataclass(frozen=True)
class CodeMap:
    by_code: dict[tuple[str, str], str]

    @classmethod
    def of(cls, registry: InstrumentRegistry, extra: Iterable[ClinicCode] = ()) -> CodeMap:
        """Raises ValueError for a config code naming an unknown instrument or a code given to two instruments."""
        by_code: dict[tuple[str, str], str] = {}
        pairs = [(c.system, c.code, key) for key, i in registry.items() for c in i.codes]
        for declared in extra:
            if declared.instrument not in registry:
                raise ValueError(f"fhir.codes: no instrument {declared.instrument!r} (known: {', '.join(registry)})")
            pairs.append((declared.system, declared.code, declared.instrument))
        for system, code, key in pairs:
            if by_code.setdefault((system, code), key) != key:
                raise ValueError(f"fhir.codes: {system}|{code} is given to two instruments")
        return cls(by_code)

    def instrument(self, codings: Iterable[tuple[str | None, str | None]]) -> str | None:
        """The instrument of the first coding (system, code) that names one, else None."""
        for system, code in codings:
            key = self.by_code.get((system or "", code or ""))
            if key is not None:
                return key
        return None

    def by_link_id(self, link_id: str | None) -> str | None:
        """The instrument whose code (in any system) is a QuestionnaireResponse item's linkId."""
        return next((key for (_, code), key in self.by_code.items() if code == link_id), None)

    def codes_of(self, key: str) -> list[tuple[str, str]]:
        return [pair for pair, k in self.by_code.items() if k == key]
