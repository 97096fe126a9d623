"""A FHIR Bundle (JSON) or an NDJSON file (FHIR Bulk Data export) into entries, each resource an R4B model.

Each entry is validated on its own, so one bad resource is named and the others still read;
problems name the entry and the element and the rule, never the value (health data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

Kind = Literal["transaction", "batch", "collection"]
KINDS: tuple[Kind, ...] = ("transaction", "batch", "collection")
Severity = Literal["error", "warning", "information"]


class Unreadable(ValueError):
    """The input as a whole cannot be read (not JSON, not a Bundle, an unsupported type)."""


@dataclass(frozen=True)
class Issue:
    """One outcome of one entry: ``element`` is a FHIRPath inside its resource ("" for the whole resource)."""

    severity: Severity
    code: str  # an OperationOutcome issue type: invalid, required, value, conflict, not-supported, processing, ...
    element: str
    rule: str


@dataclass
class Entry:
    index: int  # 0-based position in the Bundle, or line number - 1 in an NDJSON file
    label: str  # "Bundle.entry[3]" or "line 4"
    resource: Any  # an R4B model (fhir.resources is untyped), None when it could not be read
    issues: list[Issue] = field(default_factory=list)

    @property
    def type_name(self) -> str:
        return "" if self.resource is None else self.resource.get_resource_type()

    def fail(self, code: str, element: str, rule: str) -> None:
        self.issues.append(Issue("error", code, element, rule))

    @property
    def failed(self) -> bool:
        return any(i.severity == "error" for i in self.issues)


@dataclass
class Incoming:
    kind: Kind
    entries: list[Entry]
    ndjson: bool = False


def element_path(loc: Sequence[str | int]) -> str:
    """pydantic's error location as a FHIRPath: ("code", "coding", 0, "system") -> code.coding[0].system."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: Any) -> str:
    # pydantic's own messages do not quote the input, but a model's custom validator might: never pass it on.
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    if isinstance(value, str | int | float) and str(value) and str(value) in message:
        return str(error.get("type", "invalid"))
    return message


def read_resource(entry: Entry, raw: object) -> None:
    """Validate ``raw`` as the R4B resource its resourceType names; problems go to the entry."""
    if not isinstance(raw, dict):
        entry.fail("structure", "", "must be a FHIR resource (a JSON object)")
        return
    name = raw.get("resourceType")
    try:
        model = get_fhir_model_class(name) if isinstance(name, str) else None
    except (KeyError, ValueError, AttributeError, ImportError):
        model = None
    if model is None:
        entry.fail("not-supported", "resourceType", "must name an R4 resource type")
        return
    try:
        entry.resource = model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            entry.fail("invalid", element_path(error.get("loc", ())), _message(error))


def read_bundle(data: object) -> Incoming:
    """A Bundle of type transaction, batch or collection. Raises Unreadable for anything else."""
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise Unreadable("resourceType: must be Bundle")
    kind = data.get("type")
    if kind not in KINDS:
        raise Unreadable(f"Bundle.type: must be one of {', '.join(KINDS)}")
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list):
        raise Unreadable("Bundle.entry: must be a list")
    # The envelope alone (each entry without its resource) through the R4B model: fullUrl, request, ...
    envelope = {**data, "entry": [_without_resource(e) for e in raw_entries]}
    try:
        get_fhir_model_class("Bundle").model_validate(envelope)
    except ValidationError as exc:
        problems = "; ".join(f"Bundle.{element_path(e.get('loc', ()))}: {_message(e)}" for e in exc.errors())
        raise Unreadable(problems) from None
    entries = []
    for index, raw in enumerate(raw_entries):
        entry = Entry(index, f"Bundle.entry[{index}]", None)
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if resource is None:
            entry.fail("required", "", "an entry needs a resource")
        else:
            read_resource(entry, resource)
        entries.append(entry)
    return Incoming(kind, entries)


def _without_resource(entry: object) -> object:
    return {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry


def read_ndjson(lines: Iterable[str]) -> Incoming:
    """One resource per line (blank lines skipped), read as a ``collection``: good lines are stored."""
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = Entry(number - 1, f"line {number}", None)
        try:
            raw = json.loads(line)
        except ValueError:
            entry.fail("structure", "", "must be one JSON resource")
        else:
            read_resource(entry, raw)
        entries.append(entry)
    return Incoming("collection", entries, ndjson=True)
