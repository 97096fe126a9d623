"""The scorer artifact: what scoring needs of a trained model, as plain JSON and LightGBM's model text.

Training writes it once into the MLflow model (``artifacts/scorer/``), from the fitted
scikit-learn and LightGBM objects (``models.extract``), and registers the model only if
the artifact scores exactly as those objects do. Serving and batch scoring read it back
(``models.compiled``) with numpy and ``lightgbm.Booster(model_str=...)``: no pickle, and
nothing that depends on the internals of the library versions the model was trained with.

``scorer.json``::

    {"format": "dropout-risk-scorer", "version": 3, "kind": "logistic" | "lightgbm",
     "spec": FeatureSpec.to_dict(), "trajectories": ExpectedTrajectories.to_dict(),
     "reference": ConceptReference.to_dict(),  # the average client's contributions per session
     "calibration": {"method": "sigmoid", "coef": a, "intercept": b, "landmark_intercepts": {"1": b1, ...}}
                  | {"method": "isotonic", "x": [...], "y": [...]},
     # a logistic model: its design matrix, one term per column, in order
     "logistic": {"intercept": c, "missing_category": {feature: category},
                  "terms": [{"feature": f, "input": "value", "median": m, "centre": mu, "scale": s, "coef": w}
                            | {"feature": f, "input": "missing", "centre": mu, "scale": s, "coef": w}
                            | {"feature": f, "input": "category", "category": text, "coef": w}
                            | {"feature": f, "input": "level", "category": name, "level": x, "median": m,
                               "coef": w}, ...]},
     # a LightGBM model: the booster's input columns and, per categorical one, the
     # categories in the order the booster codes them
     "lightgbm": {"features": [f, ...], "categories": {feature: [category, ...]}}}

``booster.txt`` (LightGBM only): ``Booster.model_to_string()``.

A "value" term is the feature (its training median when missing), centred and scaled; a
"missing" term is 1 when the feature is missing, centred and scaled; a "category" term is
1 when the feature is that category, or is missing and ``missing_category`` names that
category (the imputer's fill value); a "level" term is 1 when a numeric feature equals
``level`` (the session number as a category).

Platt calibration: calibrated log-odds = a * raw log-odds + the row's landmark's intercept in
"landmark_intercepts", or ``b`` for a landmark not listed there (too few training rows).

Version 2 (the concept features, issue 16) added "level" terms and "reference"; a version 1
model was fitted on the old near-duplicate features and is not served: retrain it. Version 3
added "landmark_intercepts" (Platt intercept per landmark). A version 2 artifact is still read:
it has the pooled intercept only and scores exactly as before; code older than version 3 refuses
a version 3 artifact rather than ignore its per-landmark intercepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FORMAT = "dropout-risk-scorer"
VERSION = 3
READABLE = (2, 3)  # version 2: the same layout without per-landmark Platt intercepts
SCORER_DIR = "scorer"  # the artifact's folder: artifacts/scorer/ inside the MLflow model
SCORER_JSON = "scorer.json"
BOOSTER_TXT = "booster.txt"

Kind = Literal["logistic", "lightgbm"]
Input = Literal["value", "missing", "category", "level"]
Method = Literal["sigmoid", "isotonic"]


class ArtifactError(ValueError):
    """The scorer artifact is missing, unreadable or not one this code reads.

    Its message names the file and what is wrong with it, never the model's numbers.
    """


@dataclass(frozen=True)
class Term:
    """One column of a logistic model's design matrix."""

    feature: str
    input: Input
    coef: float
    median: float = 0.0  # "value" and "level": what a missing value is imputed with
    centre: float = 0.0  # "value" and "missing": the scaler's mean ...
    scale: float = 1.0  # ... and standard deviation
    category: str = ""  # "category": the level this column indicates
    level: float = 0.0  # "level": the value of the numeric feature this column indicates (its name: category)


@dataclass(frozen=True)
class LogisticParams:
    terms: tuple[Term, ...]
    intercept: float
    missing_category: dict[str, str]  # categorical feature -> the category a missing value is imputed as


@dataclass(frozen=True)
class LightGBMParams:
    features: tuple[str, ...]  # the booster's input columns, in order
    categories: dict[str, tuple[str, ...]]  # categorical feature -> categories, in the booster's code order
    booster: str  # LightGBM's model text


@dataclass(frozen=True)
class Calibration:
    method: Method
    coef: float = 1.0  # sigmoid: calibrated log-odds = coef * raw log-odds + intercept
    intercept: float = 0.0
    x: tuple[float, ...] = ()  # isotonic: the fitted thresholds, interpolated linearly
    y: tuple[float, ...] = ()
    landmark_intercepts: dict[int, float] = field(default_factory=dict)  # sigmoid: landmark -> its intercept


@dataclass(frozen=True)
class ScorerArtifact:
    kind: Kind
    spec: dict[str, Any]  # FeatureSpec.to_dict()
    trajectories: dict[str, Any]  # ExpectedTrajectories.to_dict()
    calibration: Calibration
    estimator: LogisticParams | LightGBMParams
    reference: dict[str, Any]  # ConceptReference.to_dict()


# --- writing -------------------------------------------------------------------------------------------


def write_artifact(artifact: ScorerArtifact, directory: Path) -> Path:
    """Write ``scorer.json`` (and ``booster.txt``) into ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": artifact.kind,
        "spec": artifact.spec,
        "trajectories": artifact.trajectories,
        "calibration": _calibration_json(artifact.calibration),
        "reference": artifact.reference,
    }
    estimator = artifact.estimator
    if isinstance(estimator, LogisticParams):
        document["logistic"] = {
            "intercept": estimator.intercept,
            "missing_category": dict(estimator.missing_category),
            "terms": [_term_json(term) for term in estimator.terms],
        }
    else:
        document["lightgbm"] = {
            "features": list(estimator.features),
            "categories": {k: list(v) for k, v in estimator.categories.items()},
        }
        (directory / BOOSTER_TXT).write_text(estimator.booster, encoding="utf-8")
    # allow_nan=False: standard JSON only, so any reader (not just Python's) can take it.
    (directory / SCORER_JSON).write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    return directory


def _calibration_json(calibration: Calibration) -> dict[str, Any]:
    if calibration.method == "sigmoid":
        return {
            "method": "sigmoid",
            "coef": calibration.coef,
            "intercept": calibration.intercept,
            "landmark_intercepts": {str(k): b for k, b in sorted(calibration.landmark_intercepts.items())},
        }
    return {"method": "isotonic", "x": list(calibration.x), "y": list(calibration.y)}


def _term_json(term: Term) -> dict[str, Any]:
    out: dict[str, Any] = {"feature": term.feature, "input": term.input}
    if term.input in ("value", "level"):
        out["median"] = term.median
    if term.input == "category":
        out["category"] = term.category
    elif term.input == "level":
        out |= {"category": term.category, "level": term.level}
    else:
        out |= {"centre": term.centre, "scale": term.scale}
    return out | {"coef": term.coef}


# --- reading -------------------------------------------------------------------------------------------


def read_artifact(directory: Path) -> ScorerArtifact:
    """The artifact in ``directory``; ``ArtifactError`` if it is missing, malformed or of another version."""
    document = _read_json(directory / SCORER_JSON)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArtifactError(f"{SCORER_JSON} is not a dropout-risk scorer")
    if document.get("version") not in READABLE:
        readable = " and ".join(map(str, READABLE))
        raise ArtifactError(f"{SCORER_JSON} has format version {document.get('version')!r}; this code reads {readable}")
    kind = document.get("kind")
    try:
        calibration = _calibration(document["calibration"], document["version"])
        estimator: LogisticParams | LightGBMParams
        if kind == "logistic":
            estimator = _logistic(document["logistic"])
        elif kind == "lightgbm":
            estimator = _lightgbm(document["lightgbm"], directory / BOOSTER_TXT)
        else:
            raise ArtifactError(f"{SCORER_JSON} names an unknown model kind")
        return ScorerArtifact(
            kind=kind,
            spec=dict(document["spec"]),
            trajectories=dict(document["trajectories"]),
            calibration=calibration,
            estimator=estimator,
            reference=dict(document["reference"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        # The exception's own text may quote the file; its type is enough to find the fault.
        raise ArtifactError(f"{SCORER_JSON} is malformed ({type(exc).__name__})") from None


def _read_text(path: Path, missing: str) -> str:
    """The file's text, or an ArtifactError that names the file and the fault (never its content)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path.name} is missing{missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path.name} cannot be read ({type(exc).__name__})") from None


def _read_json(path: Path) -> Any:
    text = _read_text(path, " (a model logged without a scorer artifact?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ArtifactError(f"{path.name} is not valid JSON") from None


def _calibration(data: Mapping[str, Any], version: int) -> Calibration:
    method = data["method"]
    if method == "sigmoid":
        intercepts = data["landmark_intercepts"] if version >= 3 else {}  # version 2: the pooled intercept only
        table = {_session(k): _number(v) for k, v in intercepts.items()}
        return Calibration(
            "sigmoid", coef=_number(data["coef"]), intercept=_number(data["intercept"]), landmark_intercepts=table
        )
    if method == "isotonic":
        x, y = tuple(_number(v) for v in data["x"]), tuple(_number(v) for v in data["y"])
        if not x or len(x) != len(y) or any(b < a for a, b in zip(x, x[1:], strict=False)):
            raise ArtifactError(f"{SCORER_JSON}: the isotonic thresholds are not an increasing curve")
        return Calibration("isotonic", x=x, y=y)
    raise ArtifactError(f"{SCORER_JSON} names an unknown calibration method")


def _logistic(data: Mapping[str, Any]) -> LogisticParams:
    terms = []
    for term in data["terms"]:
        kind = term["input"]
        if kind not in ("value", "missing", "category", "level"):
            raise ArtifactError(f"{SCORER_JSON}: a logistic term has an unknown input")
        terms.append(
            Term(
                feature=_text(term["feature"]),
                input=kind,
                coef=_number(term["coef"]),
                median=_number(term["median"]) if kind in ("value", "level") else 0.0,
                centre=_number(term["centre"]) if kind in ("value", "missing") else 0.0,
                scale=_number(term["scale"]) if kind in ("value", "missing") else 1.0,
                category=_text(term["category"]) if kind in ("category", "level") else "",
                level=_number(term["level"]) if kind == "level" else 0.0,
            )
        )
    missing = {_text(k): _text(v) for k, v in data["missing_category"].items()}
    return LogisticParams(terms=tuple(terms), intercept=_number(data["intercept"]), missing_category=missing)


def _lightgbm(data: Mapping[str, Any], booster_path: Path) -> LightGBMParams:
    booster = _read_text(booster_path, "")
    return LightGBMParams(
        features=tuple(_text(f) for f in data["features"]),
        categories={_text(k): tuple(_text(c) for c in v) for k, v in data["categories"].items()},
        booster=booster,
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _session(key: Any) -> int:
    """A landmark key of "landmark_intercepts": a whole session number >= 1, as text."""
    if not isinstance(key, str) or not key.isdigit() or int(key) < 1:
        raise ValueError("not a session number")
    return int(key)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value
