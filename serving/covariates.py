"""The rules a client's covariates meet, where they arrive (PUT, POST /v1/score) and where they leave (export).

A covariate becomes a column of the exported episodes file and a model input, so its name
must not be one of the contract's own columns, its text must be writable (valid Unicode),
its numbers finite and plausible, and the whole bounded in size. Problems name the
covariate and the rule, never the value (health data).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

# features.spec, not features.contract: the contract's validation library (pandera) is not needed to serve.
from dropout_risk.features.spec import EPISODE_NON_COVARIATES, ID_COLUMNS, SESSION_ID_COLUMNS, SESSION_OPTIONAL_COLUMNS

# therapist_id is an episode column that PUT stores among the covariates itself (like age and gender).
RESERVED = frozenset({*EPISODE_NON_COVARIATES, *SESSION_ID_COLUMNS, *SESSION_OPTIONAL_COLUMNS, *ID_COLUMNS}) - {
    "therapist_id"
}
MAX_COVARIATES = 50
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 200
# No covariate a clinic records (age, counts, questionnaire totals, days) comes near this; -1e308 scored 0.99999.
MAX_ABS_NUMBER = 1e9
AGE_RANGE = (0.0, 120.0)


def is_valid_text(text: str) -> bool:
    """False for a lone surrogate ("\\udfff"): JSON lets one through, but it cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not is_valid_text(name):
        return "a covariate name must be valid Unicode text"
    if not name or len(name) > MAX_NAME_CHARS:
        return f"a covariate name must be 1 to {MAX_NAME_CHARS} characters"
    if name in RESERVED:
        return f"covariate {name!r}: the name is reserved for the data contract's own column"
    return None


def _value_problem(name: str, value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not is_valid_text(value):
            return f"covariate {name!r}: text must be valid Unicode"
        if len(value) > MAX_TEXT_CHARS:
            return f"covariate {name!r}: text must be at most {MAX_TEXT_CHARS} characters"
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
            return f"covariate {name!r}: a number must be finite and at most {MAX_ABS_NUMBER:.0e} in size"
        if name == "age" and not AGE_RANGE[0] <= value <= AGE_RANGE[1]:
            return f"covariate 'age': must be from {AGE_RANGE[0]:.0f} to {AGE_RANGE[1]:.0f}"
        return None
    return f"covariate {name!r}: must be text, a number, true/false or null"


def covariate_problems(covariates: Mapping[str, object]) -> Iterator[str]:
    """Every rule ``covariates`` break, one message each; none for a valid set."""
    if len(covariates) > MAX_COVARIATES:
        yield f"a client has at most {MAX_COVARIATES} covariates"
    for name, value in covariates.items():
        problem = _name_problem(name)
        if problem is None and isinstance(name, str):
            problem = _value_problem(name, value)
        if problem is not None:
            yield problem
