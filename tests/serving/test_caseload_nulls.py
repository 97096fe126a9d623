"""Clients with no risk yet come last in the caseload, on SQLite as on PostgreSQL.

SQLite sorts NULL as the smallest value, so ``ORDER BY x DESC`` already puts NULLs
last there while PostgreSQL puts them first: a query that forgets ``NULLS LAST``
orders correctly on SQLite alone. The SQL the caseload sends is therefore checked
too, so the SQLite run catches what only PostgreSQL would show.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 20.0, "srs": 38.0}}


def _caseload_sql(api, headers, order: str) -> tuple[dict, list[str]]:
    """The caseload's JSON and the SELECTs of clients it sent."""
    sent: list[str] = []

    def capture(_conn, _cursor, statement, _parameters, _context, _executemany):
        if re.search(r"\bFROM clients\b", statement) and "ORDER BY" in statement:
            sent.append(statement)

    engines = {api.app.state.engine, api.app.state.reader}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        body = api.client.get(f"/v1/clients?order={order}&page_size=100", headers=headers).json()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)
    return body, sent


@pytest.fixture(scope="module")
def caseload(api):
    headers = api.new_clinic()
    for i, srs in enumerate((40.0, 24.0, 31.0)):
        api.client.post(f"/v1/clients/k{i}/sessions", json={**S1, "scores": {"ors": 20.0, "srs": srs}}, headers=headers)
    for name in ("a-new", "z-new"):  # no session yet: no risk and no last session date
        assert api.client.put(f"/v1/clients/{name}", json={"age": 40}, headers=headers).status_code == 200
    return headers


@pytest.mark.parametrize(("order", "column"), [("risk", "probability"), ("recent", "last_session_date")])
def test_clients_without_a_value_come_last(api, caseload, order, column):
    body, _ = _caseload_sql(api, caseload, order)
    items = body["items"]
    assert len(items) == 5
    assert [i["client_id"] for i in items[-2:]] == ["a-new", "z-new"]  # ties by identifier
    assert all(i[column] is None for i in items[-2:]) and all(i[column] is not None for i in items[:-2])
    if order == "risk":
        risks = [i["probability"] for i in items[:-2]]
        assert risks == sorted(risks, reverse=True)


@pytest.mark.parametrize(("order", "column"), [("risk", "current_probability"), ("recent", "last_session_date")])
def test_the_caseload_query_says_nulls_last(api, caseload, order, column):
    # What SQLite's NULL ordering hides: without NULLS LAST, PostgreSQL lists the unscored first.
    _, sent = _caseload_sql(api, caseload, order)
    assert len(sent) == 1, sent
    order_by = sent[0].split("ORDER BY", 1)[1]
    assert re.search(rf"\b{column} DESC NULLS LAST\b", order_by), order_by
