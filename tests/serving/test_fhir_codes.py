"""Instrument codes are data: the registry's LOINC codes, an [[instruments]] entry's codes and [[fhir.codes]]."""

from __future__ import annotations

import pytest

from dropout_risk.features.instruments import LOINC, Instrument, InstrumentCode, default_registry
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.settings import ClinicCode

BDI2 = Instrument(
    key="bdi2",
    name="Beck Depression Inventory-II",
    min=0,
    max=63,
    higher_is_better=False,
    role="outcome",
    codes=(InstrumentCode(system="urn:trial", code="bdi2-total"),),
)


def test_codes_come_from_the_registry_a_declared_instrument_and_the_config():
    registry = default_registry().with_extra([BDI2])
    codes = CodeMap.of(registry, [ClinicCode(instrument="ors", system="urn:clinic", code="ors")])
    assert codes.instrument([(LOINC, "44261-6")]) == "phq9"
    assert codes.instrument([(LOINC, "70274-6")]) == "gad7"
    assert codes.instrument([("urn:other", "x"), ("urn:trial", "bdi2-total")]) == "bdi2"
    assert codes.instrument([("urn:clinic", "ors")]) == "ors"
    assert codes.instrument([(None, "ors"), ("urn:other", "44261-6")]) is None  # the system counts
    assert codes.by_link_id("44261-6") == "phq9"


def test_a_code_for_an_unknown_instrument_or_for_two_instruments_is_refused():
    with pytest.raises(ValueError, match="no instrument 'bdi2'"):
        CodeMap.of(default_registry(), [ClinicCode(instrument="bdi2", system="urn:clinic", code="b")])
    with pytest.raises(ValueError, match="given to two instruments"):
        CodeMap.of(default_registry(), [ClinicCode(instrument="ors", system=LOINC, code="44261-6")])
