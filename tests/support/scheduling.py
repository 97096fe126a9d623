"""The order in which pytest-xdist hands test files to its workers (`make test`, `make test-fast`).

With ``--dist loadfile`` each worker takes whole files, in the order of the collected items when
``--no-loadscope-reorder`` is given. Left to itself xdist sorts files by their number of tests, so
on two workers both often start with files that need the suite's trained champion: one worker
trains it and the other waits on the lock, idle, for the whole training. Here the longest file that
needs the champion goes first and trains it; the files that need no trained model (neither the
champion nor the two test models) follow, so the other worker has work of its own meanwhile; the
rest come last, when the champion is there. (The two test models are trained by the first file
that needs them: work, not a wait, as long as no other worker is training them.)

Within each group the longest files go first, so the run does not end on one worker finishing a
long file alone. "Longest" is the seconds a file took in the last run that ran it, which
``FileSeconds`` keeps in pytest's cache (``.pytest_cache``, git-ignored); a file with no record (a
fresh clone, as in CI, or a new file) goes before those with one: those with a test marked ``slow``
first, then the larger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

# The session fixtures that train a model, first needed by the file that trains it; the first leads.
TRAINED = ("champion", "two_models_trained")
CACHE_KEY = "dropout_risk/file_seconds"


class Item(Protocol):
    nodeid: str


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def order_for_workers(items: Sequence[Item], seconds: Mapping[str, float] | None = None) -> list[Item]:
    """``items`` with each file's tests kept together and in their order, the files ordered as above."""
    files: dict[str, list[Item]] = {}
    for item in items:
        files.setdefault(file_of(item.nodeid), []).append(item)
    known = seconds or {}
    slow = {name for name, tests in files.items() if any(_marked_slow(item) for item in tests)}

    def longest_first(name: str) -> tuple[bool, float, bool, int]:
        return name in known, -known.get(name, 0.0), name not in slow, -len(files[name])

    longest = sorted(files, key=longest_first)  # stable: collection order breaks ties
    needs = {name: {f for item in tests for f in TRAINED if f in _fixtures(item)} for name, tests in files.items()}
    heads = [name for name in longest if TRAINED[0] in needs[name]][:1]
    free = [name for name in longest if not needs[name] and name not in heads]
    rest = [name for name in longest if name not in heads and name not in free]
    return [item for name in heads + free + rest for item in files[name]]


class FileSeconds:
    """Seconds per test file (setup, call and teardown of its tests), gathered from the run's reports."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, nodeid: str, duration: float) -> None:
        name = file_of(nodeid)
        self.seconds[name] = self.seconds.get(name, 0.0) + duration

    def merged_into(self, previous: Mapping[str, float]) -> dict[str, float]:
        """The earlier record with this run's files replaced: a run of a few files keeps the others' figures."""
        return {**previous, **{name: round(value, 3) for name, value in self.seconds.items()}}


def _marked_slow(item: Item) -> bool:
    closest = getattr(item, "get_closest_marker", None)
    return closest is not None and closest("slow") is not None


def _fixtures(item: Item) -> list[str]:
    return getattr(item, "fixturenames", [])  # every fixture a test function needs, directly or not
