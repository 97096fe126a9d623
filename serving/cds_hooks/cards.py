"""A risk as a CDS Hooks 2.0 card: summary, indicator by band, markdown detail, source and a link."""

from __future__ import annotations

import uuid
from typing import Any

from dropout_risk.serving.risk import Band, Risk

INDICATOR: dict[Band, str] = {"low": "info", "moderate": "warning", "high": "critical"}
SOURCE = {"label": "dropout-risk"}
MAX_SUMMARY = 140  # the specification's limit


def summary(risk: Risk, previous: float | None) -> str:
    """ "Dropout risk 34% (moderate), up from 22%": whole percentages, the move from the session before."""
    text = f"Dropout risk {risk.probability:.0%} ({risk.band})"
    if previous is not None:
        now, before = round(risk.probability * 100), round(previous * 100)
        move = "up from" if now > before else "down from" if now < before else "unchanged from"
        text += f", {move} {before}%"
    return text[:MAX_SUMMARY]


def detail(risk: Risk) -> str:
    """Markdown: what raises or lowers it, the flags, and the next steps with their sources."""
    lines = [f"After session {risk.session_number}, model version {risk.model_version}."]
    if risk.factors:
        lines += ["", "**What moves the risk**", ""]
        lines += [f"- {f.text} ({f.effect} the risk)" for f in risk.factors]
    if risk.flags:
        lines += ["", "**Flags**", ""] + [f"- {f.text}" for f in risk.flags]
    if risk.suggestions:
        lines += ["", "**Suggested next steps**", ""]
        lines += [f"- {s.text} (source: {s.source})" for s in risk.suggestions]
    if risk.missing_inputs:
        lines += ["", f"Not given at this session (scored as missing): {', '.join(risk.missing_inputs)}."]
    return "\n".join(lines)


def card(risk: Risk, previous: float | None, link: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary(risk, previous),
        "indicator": INDICATOR[risk.band],
        "detail": detail(risk),
        "source": SOURCE,
        "links": [{"label": "Open the client in dropout-risk", "url": link, "type": "absolute"}],
    }
