"""The two client histories of issue 16's first bullet, replayed session by session through the API.

Before issue 16 the served reasons read against their own words for clients like these:
"ORS is 21 points below the expected trajectory -> lowers risk", "SRS fell 18 points since last
session -> lowers risk", "ORS improved 3 points -> raises risk". Each response here must read
coherently: a factor's words match its effect, the steps of "what changed" sum to the move in
risk and none moves against what its concept did (an alliance that fell does not lower the risk).

- ``OFF_TRACK``: the outcome (ORS) stays well below the trajectory expected from the intake score,
  and the alliance (SRS) falls 6 points at the last session.
- ``IMPROVING``: the ORS improves 3 points to above the expected trajectory, after a fortnight's
  gap with a missed appointment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

CONCEPTS = ("alliance", "outcome", "attendance", "covariates")
STEPS = ["returned", "alliance", "outcome", "attendance"]
# The words that say which way a concept pushes the risk (serving.reasons.HEADLINES).
RAISING_WORDS = ("weaker", "behind", "more missed")
LOWERING_WORDS = ("stronger", "ahead", "fewer missed")


@dataclass(frozen=True)
class Visit:
    date: str
    ors: float
    srs: float
    missed: int  # since the last session


OFF_TRACK = [
    Visit("2025-03-03", 17, 38, 0),
    Visit("2025-03-10", 18, 37, 0),
    Visit("2025-03-17", 16, 37, 0),
    Visit("2025-03-24", 15, 31, 0),
]
IMPROVING = [
    Visit("2025-03-03", 19, 37, 0),
    Visit("2025-03-10", 21, 38, 0),
    Visit("2025-03-24", 24, 38, 1),
]


def _replay(api, headers: dict[str, str], client_id: str, visits: list[Visit]) -> list[dict]:
    """Record each visit through POST /v1/clients/{id}/sessions; the risk each response gives."""
    assert api.client.put(f"/v1/clients/{client_id}", json={"age": 34, "gender": "female"}, headers=headers).is_success
    risks = []
    for number, visit in enumerate(visits, 1):
        body = {
            "session_number": number,
            "session_date": visit.date,
            "scores": {"ors": visit.ors, "srs": visit.srs},
            "missed_since_last": visit.missed,
        }
        response = api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        risks.append(response.json()["risk"])
    served = api.client.get(f"/v1/clients/{client_id}/risk", headers=headers).json()
    assert served["risk"] == risks[-1]  # the stored client's risk reads the same when asked again
    assert [h["probability"] for h in served["history"]] == pytest.approx([r["probability"] for r in risks], abs=1e-12)
    return risks


def _assert_coherent(risks: list[dict]) -> None:
    """Every response: factors whose words match their effect, steps that sum to the move in risk."""
    for number, risk in enumerate(risks, 1):
        assert risk["session_number"] == number
        for factor in risk["factors"]:
            assert factor["feature"] in CONCEPTS
            assert factor["effect"] == ("raises" if factor["contribution"] > 0 else "lowers"), factor
            against = LOWERING_WORDS if factor["effect"] == "raises" else RAISING_WORDS
            assert not any(word in factor["text"] for word in against), factor
        if number == 1:
            assert risk["changes"] == []
            continue
        assert [c["concept"] for c in risk["changes"]] == STEPS
        moved = 100 * (risk["probability"] - risks[number - 2]["probability"])
        assert sum(c["points"] for c in risk["changes"]) == pytest.approx(moved, abs=1e-9)
        assert risk["changes"][0]["text"] == f"came back for session {number}"


def _factor(risk: dict, concept: str) -> dict:
    return next(f for f in risk["factors"] if f["feature"] == concept)


def _step(risk: dict, concept: str) -> dict:
    return next(c for c in risk["changes"] if c["concept"] == concept)


def test_a_client_off_track_whose_alliance_fell_reads_coherently(api):
    risks = _replay(api, api.new_clinic(), "off-track", OFF_TRACK)
    _assert_coherent(risks)
    last = risks[-1]
    # Well behind the expected outcome and a weaker alliance: both named, both raise the risk.
    outcome, alliance = _factor(last, "outcome"), _factor(last, "alliance")
    assert outcome["effect"] == "raises" and outcome["text"].startswith("progress behind the average client's")
    assert "below the expected trajectory" in outcome["text"]
    assert alliance["effect"] == "raises" and alliance["text"].startswith("alliance weaker than")
    assert "alliance score (SRS) is 31" in alliance["text"]
    # The SRS fell 6 points: its step raises the risk, and it is the largest move after coming back.
    fell = _step(last, "alliance")
    assert fell["text"].startswith("alliance score (SRS) from 37 to 31 (average so far")
    assert fell["points"] > 0 and last["probability"] > risks[-2]["probability"]
    assert fell["points"] == max(c["points"] for c in last["changes"])
    assert "alliance_drop" in {f["flag"] for f in last["flags"]}
    # Each session the ORS fell, its step did not lower the risk; the alliance step neither when the SRS fell.
    for before, after, risk in zip(OFF_TRACK[:-1], OFF_TRACK[1:], risks[1:], strict=True):
        if after.ors < before.ors:
            assert _step(risk, "outcome")["points"] >= 0
        if after.srs < before.srs:
            assert _step(risk, "alliance")["points"] >= 0


def test_a_client_who_improved_after_a_missed_appointment_reads_coherently(api):
    risks = _replay(api, api.new_clinic(), "improving", IMPROVING)
    _assert_coherent(risks)
    last = risks[-1]
    # ORS 21 -> 24, now above the expected trajectory: the outcome step does not raise the risk and
    # no factor says the improvement raises it; the missed appointment does raise it.
    improved = _step(last, "outcome")
    assert improved["text"].startswith("ORS from 21 to 24") and "above the expected trajectory" in improved["text"]
    assert improved["points"] <= 0
    assert all(f["effect"] == "lowers" for f in last["factors"] if f["feature"] == "outcome")
    missed = _step(last, "attendance")
    assert missed["text"] == "1 missed appointment since the last session" and missed["points"] > 0
    attendance = _factor(last, "attendance")
    assert attendance["effect"] == "raises" and attendance["text"].startswith("more missed appointments than")
    assert "missed_appointments" in {f["flag"] for f in last["flags"]}
