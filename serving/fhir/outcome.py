"""An import's outcome as FHIR: a batch- or transaction-response Bundle, or an OperationOutcome.

Every issue names the entry (``Bundle.entry[i]``), the element (a FHIRPath in ``expression``) and
the rule (``diagnostics``); a value never appears.
"""

from __future__ import annotations

from typing import Any

from dropout_risk.serving.fhir.importer import Imported
from dropout_risk.serving.fhir.parse import Entry, Issue


def expression(entry: Entry, issue: Issue) -> str:
    base = f"{entry.label}.resource" if entry.label.startswith("Bundle.") else entry.type_name or "Resource"
    return f"{base}.{issue.element}" if issue.element else base


def _issue(entry: Entry, issue: Issue) -> dict[str, Any]:
    where = "" if entry.label.startswith("Bundle.") else f"{entry.label}: "
    return {
        "severity": issue.severity,
        "code": issue.code,
        "diagnostics": where + issue.rule,
        "expression": [expression(entry, issue)],
    }


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    if not issues:  # an OperationOutcome needs at least one issue
        issues = [{"severity": "information", "code": "informational", "diagnostics": "nothing to import"}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def entry_issues(imported: Imported, *, errors_only: bool = False) -> list[dict[str, Any]]:
    """Every entry's issues; with nothing to say about an entry, an information issue with its status."""
    issues = []
    for entry in imported.incoming.entries:
        own = [i for i in entry.issues if not errors_only or i.severity == "error"]
        if not own and not errors_only:
            status = imported.statuses.get(entry.index, "200 OK")
            rule = "session stored" if status.startswith("201") else "nothing new to store"
            own = [Issue("information", "informational", "", rule)]
        issues += [_issue(entry, i) for i in own]
    return issues


def failed_status(entry: Entry) -> str:
    codes = {i.code for i in entry.issues if i.severity == "error"}
    return "409 Conflict" if codes == {"conflict"} else "422 Unprocessable Entity"


def response_bundle(imported: Imported) -> dict[str, Any]:
    """The batch-response (or transaction-response) Bundle: one entry per input entry, in order."""
    entries = []
    for entry in imported.incoming.entries:
        status = failed_status(entry) if entry.failed else imported.statuses.get(entry.index, "200 OK")
        response: dict[str, Any] = {"status": status}
        if entry.issues:
            response["outcome"] = operation_outcome([_issue(entry, i) for i in entry.issues])
        entries.append({"response": response})
    return {"resourceType": "Bundle", "type": f"{imported.incoming.kind}-response", "entry": entries}


def http_status(imported: Imported) -> int:
    """A transaction with a failed entry: 409 when every failure is a conflict, else 422; otherwise 200."""
    failed = imported.failed
    if imported.incoming.kind != "transaction" or not failed:
        return 200
    return 409 if all(failed_status(e).startswith("409") for e in failed) else 422


def answer(imported: Imported) -> tuple[int, dict[str, Any]]:
    """The status and body of ``POST /fhir/r4`` for an input that was read."""
    status = http_status(imported)
    if status != 200:  # a failed transaction stored nothing: its errors, by entry
        return status, operation_outcome(entry_issues(imported, errors_only=True))
    if imported.incoming.kind == "collection":
        return 200, operation_outcome(entry_issues(imported))
    return 200, response_bundle(imported)
