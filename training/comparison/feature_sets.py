"""Which feature sets to compare, at which landmark sessions: parsing and checking the names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dropout_risk.features.concepts import directions, model_groups
from dropout_risk.features.spec import GROUP_NAMES, LANDMARK, FeatureSpec
from dropout_risk.training.compare_settings import GROUP_JOINER, SET_SEPARATOR
from dropout_risk.training.comparison.errors import CompareError, FeatureSetError

DEFAULT_FEATURE_SETS = ("landmark", "outcome", "alliance", "outcome+alliance", "outcome+alliance+attendance+covariates")
MAX_LANDMARK = 52  # FeatureConfig.max_landmark's upper bound


@dataclass(frozen=True)
class FeatureSet:
    name: str
    groups: tuple[str, ...]  # feature groups named
    features: tuple[str, ...]  # feature columns named explicitly
    columns: tuple[str, ...]  # the model inputs: landmark + the union, in feature_columns order
    directions: dict[str, int]  # column -> declared clinical direction (features.concepts)


def split_set_names(text: str | Sequence[str] | None) -> list[str] | None:
    """``"outcome,alliance"`` -> ``["outcome", "alliance"]`` (a list passes through, stripped)."""
    if text is None:
        return None
    parts = text.split(SET_SEPARATOR) if isinstance(text, str) else list(text)
    names = [p.strip() for p in parts]
    if not names or any(not n for n in names):
        raise FeatureSetError("--feature-sets has an empty name (use e.g. outcome,alliance,outcome+alliance)")
    return names


def parse_landmarks(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"1-6"``, ``"3"``, ``"1,2,5"`` or ``"1-3,6"`` -> sorted unique landmark sessions."""
    if text is None:
        return None
    values = [int(v) for v in text] if not isinstance(text, str) else _landmark_list(text)
    if not values:
        raise CompareError("--landmarks names no session")
    bad = [v for v in values if not 1 <= v <= MAX_LANDMARK]
    if bad:
        raise CompareError(f"--landmarks: sessions must lie within 1-{MAX_LANDMARK} (got {bad[0]})")
    return tuple(sorted(set(values)))


def _landmark_list(text: str) -> list[int]:
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise CompareError(f"--landmarks {text!r}: use a session, a range or a list (3, 1-6, 1,2,5)")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if hi < lo:
            raise CompareError(f"--landmarks {text!r}: range {part} runs backwards")
        values.extend(range(lo, hi + 1))
    return values


def default_feature_sets(spec: FeatureSpec) -> tuple[list[str], list[str]]:
    """``DEFAULT_FEATURE_SETS`` without the groups these data have no feature for, and a note per skipped group.

    A set left with nothing but the session number, or the same as an earlier set, is dropped, so
    outcome-only data compare ``landmark``, ``outcome`` and ``outcome+attendance+covariates``.
    """
    groups = model_groups(spec)
    empty = [g for g in GROUP_NAMES if not groups.get(g)]
    names: list[str] = []
    for default in DEFAULT_FEATURE_SETS:
        kept = GROUP_JOINER.join(part for part in default.split(GROUP_JOINER) if part not in empty)
        if kept and kept not in names:
            names.append(kept)
    notes = [
        f"default feature sets: skipped group {g!r} (no {g} features in these data)"
        for g in empty
        if any(g in default.split(GROUP_JOINER) for default in DEFAULT_FEATURE_SETS)
    ]
    return names, notes


def resolve_feature_sets(
    names: Sequence[str], spec: FeatureSpec, defined: Mapping[str, Sequence[str]]
) -> tuple[list[FeatureSet], list[str]]:
    """The sets named (config-defined first, else groups/features joined by ``+``), and warnings.

    Raises ``FeatureSetError`` naming the first unknown name, a duplicate, or a set
    with no feature in these data.
    """
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise FeatureSetError(f"feature set {duplicates[0]!r} is listed twice")
    sets, warnings = [], []
    for name in names:
        feature_set, set_warnings = _resolve(name, spec, defined)
        sets.append(feature_set)
        warnings.extend(set_warnings)
    return sets, warnings


def _resolve(name: str, spec: FeatureSpec, defined: Mapping[str, Sequence[str]]) -> tuple[FeatureSet, list[str]]:
    groups = model_groups(spec)
    all_columns = spec.feature_columns()
    entries = [e.strip() for e in (defined[name] if name in defined else name.split(GROUP_JOINER))]
    if any(not e for e in entries):
        raise FeatureSetError(f"feature set {name!r} has an empty part (join groups with '+')")
    unknown = [e for e in entries if e not in groups and e not in all_columns]
    if unknown:
        known_sets = ", ".join(defined) or "none"
        what = "feature set, group or feature" if name == unknown[0] else "group or feature"
        raise FeatureSetError(
            f"unknown {what} {unknown[0]!r} in feature set {name!r} (groups: {', '.join(GROUP_NAMES)}; "
            f"sets in the config: {known_sets}; or a feature column of the landmark table)"
        )
    named_groups = tuple(dict.fromkeys(e for e in entries if e in groups))
    features = tuple(dict.fromkeys(e for e in entries if e not in groups))
    warnings = [
        f"feature set {name!r}: group {group!r} has no columns in these data"
        for group in named_groups
        if not groups[group]
    ]
    chosen = {c for g in named_groups for c in groups[g]} | set(features)
    columns = tuple(c for c in all_columns if c == LANDMARK or c in chosen)
    if len(columns) == 1 and LANDMARK not in features:
        raise FeatureSetError(
            f"feature set {name!r} has no features in these data (its groups are empty: "
            f"no instrument or covariate of that kind has data)"
        )
    return FeatureSet(name, named_groups, features, columns, directions(spec, columns)), warnings
