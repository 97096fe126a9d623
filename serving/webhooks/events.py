"""Which alerts a newly served risk raises, against the risk after the session before.

- ``risk.band_raised``: the client enters the ``high`` band, or the risk rises by at least
  ``webhooks.band_rise`` (0.10 by default) since the previous session;
- ``flag.raised``: a clinical flag fires that did not at the previous session (at session 1, any).

An alert carries the client's id, the session number, the band, the probability, the model version
and the flags' names: no scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dropout_risk.serving.risk import Risk

BAND_RAISED = "risk.band_raised"
FLAG_RAISED = "flag.raised"
EVENTS = (BAND_RAISED, FLAG_RAISED)


@dataclass(frozen=True)
class Alert:
    event: str
    data: dict[str, Any]


def alerts(client_id: str, previous: Risk | None, risk: Risk, band_rise: float) -> list[Alert]:
    data: dict[str, Any] = {
        "client_id": client_id,
        "session_number": risk.session_number,
        "band": risk.band,
        "probability": risk.probability,
        "model_version": risk.model_version,
        "flags": [f.flag for f in risk.flags],
        "previous_band": None if previous is None else previous.band,
        "previous_probability": None if previous is None else previous.probability,
    }
    out = []
    entered_high = risk.band == "high" and (previous is None or previous.band != "high")
    rose = previous is not None and risk.probability - previous.probability >= band_rise
    if entered_high or rose:
        out.append(Alert(BAND_RAISED, data))
    before = set() if previous is None else {f.flag for f in previous.flags}
    raised = sorted({f.flag for f in risk.flags} - before)
    if raised:
        out.append(Alert(FLAG_RAISED, {**data, "raised": raised}))
    return out
