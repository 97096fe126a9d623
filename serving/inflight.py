"""How many requests each API key has in progress; a key at its cap is refused (429) at once.

A rate limit bounds how many requests a key starts a second, not how much of the one
process they take: 64 concurrent 200-session scores inside the rate limit still held the
interpreter (scoring is Python holding the GIL) and the worker threads, and another
clinic's p95 went from 7 ms to over 500 ms. A key may have ``limit`` requests in the app at
once (from the key check until the response is sent, the body's arrival included), so a
burst from one clinic queues behind itself, not in front of everyone else.

A count exists only while a key has a request in progress: the table never holds more
entries than there are requests in the process.
"""

from __future__ import annotations


class InFlight:
    def __init__(self, limit: int):
        self.limit = limit
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def full(self, key: str) -> bool:
        return self._counts.get(key, 0) >= self.limit

    def enter(self, key: str) -> bool:
        """Counts a request in for ``key``, or returns False when the key is at its cap.

        Called on the event loop with no await between the check and the count: no lock is needed.
        """
        if self.full(key):
            return False
        self._counts[key] = self._counts.get(key, 0) + 1
        return True

    def leave(self, key: str) -> None:
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]
