"""What the clinician could do next: one suggested step per clinical flag, and one for a high risk.

Clinicians' most common complaint about measurement-based care is that it says
something is wrong but not what to do. ``SUGGESTIONS`` is the one table of
next steps the API returns, each with the published work it comes from:

| key | next step | source |
|---|---|---|
| alliance_below_cutoff | ask for feedback on the session and what to change | PCOMS (Duncan & Miller) |
| alliance_drop | raise the lower rating now, check it changed next time | PCOMS (Duncan & Miller) |
| no_reliable_improvement | review goals and approach together | OQ-Analyst Clinical Support Tools (Lambert et al.) |
| off_track | show progress vs the expected course, support questions | OQ-Analyst signals; PCOMS |
| missed_appointments | reach out before the next session | appointment-reminder and engagement literature |
| high_risk | talk about engagement openly | de Jong et al. 2021; Swift & Greenberg 2015 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dropout_risk.features.flags import FLAGS
from dropout_risk.serving.risk import SuggestionOut
from dropout_risk.serving.values import fires

HIGH_RISK = "high_risk"
BANDS = ("low", "moderate", "high")
HIGH_BAND = "high"

_PCOMS_SRS = (
    "Duncan, Miller et al. (2003), The Session Rating Scale: preliminary psychometric properties "
    "of a 'working' alliance measure, Journal of Brief Therapy 3(1):3-12"
)
_PCOMS_FEEDBACK = (
    "Miller, Duncan, Brown, Sorrell & Chalk (2006), Using formal client feedback to improve "
    "retention and outcome, Journal of Brief Therapy 5(1):5-22"
)
_PCOMS_SYSTEM = (
    "Duncan (2012), The Partners for Change Outcome Management System (PCOMS), Canadian Psychology 53(2):93-104"
)
_OQ_CST = (
    "OQ-Analyst Clinical Support Tools (Lambert et al.): Whipple et al. (2003), Journal of Counseling "
    "Psychology 50(1):59-68; Harmon et al. (2007), Psychotherapy Research 17(4):379-392"
)
_OQ_SIGNAL = (
    "OQ-Analyst not-on-track feedback: Lambert et al. (2001), Psychotherapy Research 11(1):49-68; "
    "Shimokawa, Lambert & Smart (2010), Journal of Consulting and Clinical Psychology 78(3):298-311"
)
_REMINDERS = (
    "Gurol-Urganci et al. (2013), Mobile phone messaging reminders for attendance at healthcare "
    "appointments, Cochrane Database of Systematic Reviews CD007458"
)
_ENGAGEMENT = (
    "Swift & Greenberg (2015), Premature Termination in Psychotherapy: Strategies for Engaging "
    "Clients and Improving Outcomes, American Psychological Association"
)
_ROM_FEEDBACK = (
    "de Jong et al. (2021), Using progress feedback to improve outcomes and reduce drop-out, "
    "treatment duration, and deterioration: a multilevel meta-analysis, "
    "Clinical Psychology Review 85:102002"
)


@dataclass(frozen=True)
class Suggestion:
    key: str
    text: str
    source: str


def _table(*suggestions: Suggestion) -> dict[str, Suggestion]:
    return {s.key: s for s in suggestions}


# The ONE table of next steps: one entry per clinical flag (features.flags.FLAGS) plus "high_risk".
SUGGESTIONS: dict[str, Suggestion] = _table(
    Suggestion(
        "alliance_below_cutoff",
        "Ask the client for feedback on the session: did they feel heard, did you work on what they wanted, "
        "did the approach fit? Ask what to change, thank them for the honest rating, and act on it next session.",
        f"PCOMS (Duncan & Miller): {_PCOMS_SRS}; {_PCOMS_FEEDBACK}",
    ),
    Suggestion(
        "alliance_drop",
        "Raise the lower rating with the client: ask what was missing from this session and what you could do "
        "differently, then check at the start of the next session whether it is better.",
        f"PCOMS (Duncan & Miller), any drop in the SRS is discussed with the client: {_PCOMS_FEEDBACK}; "
        f"{_PCOMS_SYSTEM}",
    ),
    Suggestion(
        "no_reliable_improvement",
        "Review goals and approach together with the client. Check the alliance, their motivation, social "
        "support and recent life events, and agree on what to change (focus, method, frequency) or consult.",
        _OQ_CST,
    ),
    Suggestion(
        "off_track",
        "Show the client their progress against the expected course and ask how therapy is working for them; "
        "go through alliance, motivation, social support and life events, and adjust the plan.",
        f"{_OQ_SIGNAL}; {_OQ_CST}; PCOMS expected treatment response: {_PCOMS_FEEDBACK}",
    ),
    Suggestion(
        "missed_appointments",
        "Reach out before the next session (call or message): check in, ask what got in the way, and confirm "
        "the next appointment with a reminder.",
        f"{_REMINDERS}; {_ENGAGEMENT}; missed-assessment alerts of measurement-based-care platforms "
        "(Greenspace, Mirah)",
    ),
    Suggestion(
        HIGH_RISK,
        "Talk about engagement openly: say that some clients stop early and you would like to hear if therapy "
        "is not working for them, review their feedback scores together, and agree on the next appointment "
        "before they leave.",
        f"{_ROM_FEEDBACK}; {_ENGAGEMENT}",
    ),
)


def suggestions_for(flags: Sequence[str] | Mapping[str, object], band: str) -> list[SuggestionOut]:
    """Next steps for the flags that fire, in ``FLAGS`` order, then ``high_risk`` when ``band`` is "high".

    ``flags`` names the flags that fire (a name given twice counts once). A
    mapping of flag -> bool is also accepted (its true entries fire). Unknown
    flag names or bands raise ``ValueError``: they are programming errors, not
    something to pass over silently.
    """
    if isinstance(flags, str):
        flags = [flags]
    elif isinstance(flags, Mapping):
        flags = [name for name, value in flags.items() if fires(value)]
    firing = set(flags)
    unknown = sorted(map(str, firing - set(FLAGS)))
    if unknown:
        raise ValueError(f"unknown clinical flag(s): {', '.join(unknown)} (known: {', '.join(FLAGS)})")
    if band not in BANDS:
        raise ValueError(f"unknown risk band {band!r} (known: {', '.join(BANDS)})")
    keys = [name for name in FLAGS if name in firing]
    if band == HIGH_BAND:
        keys.append(HIGH_RISK)
    return [SuggestionOut(flag=key, text=SUGGESTIONS[key].text, source=SUGGESTIONS[key].source) for key in keys]
