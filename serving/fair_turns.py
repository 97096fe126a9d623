"""Scoring takes turns: one score computes at a time in a process, and waiting clinics are served in rotation.

Scoring is Python holding the GIL. With the per-key cap (``serving.inflight``) one clinic still
had two large scores computing beside another clinic's small one, and the interpreter's time
slices split three ways: the small one's p95 went from 18 to 126 ms. Taking turns, a request
waits for at most the score already computing plus one turn of each other clinic waiting, and
then computes alone at full speed. A clinic with a queue of its own waits behind its own
requests, not in front of everyone else's.

The turn covers only computation (feature rows, the model, the explanation): whoever holds it
never waits for the database, so a request holding a row lock while it waits for a turn cannot
deadlock with the turn's holder.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager


class FairTurns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        # Keys with someone waiting, in the order they are served next; each key's waiters in arrival order.
        self._waiting: OrderedDict[str, deque[threading.Event]] = OrderedDict()

    def __len__(self) -> int:
        """Keys with a request waiting for a turn (the table holds nothing else)."""
        return len(self._waiting)

    @contextmanager
    def turn(self, key: str) -> Iterator[None]:
        """Holds the process's one scoring turn for ``key`` while the block runs."""
        mine = threading.Event()
        with self._lock:
            if self._busy:
                self._waiting.setdefault(key, deque()).append(mine)
            else:
                self._busy = True
                mine.set()
        mine.wait()
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        """Gives the turn to the first waiter of the next key in rotation, or frees it."""
        with self._lock:
            if not self._waiting:
                self._busy = False
                return
            key, waiters = next(iter(self._waiting.items()))
            chosen = waiters.popleft()
            if waiters:
                self._waiting.move_to_end(key)  # its next request waits for every other key's turn
            else:
                del self._waiting[key]
            chosen.set()
