"""Refusals paced for a client that ignores ``Retry-After``.

With its requests refused at once (429), one clinic's 64 clients resending without pause
made over 400 refusals a second, and the machine's time went to asking and refusing:
another clinic's p95 stayed above 800 ms. A key's first refusal is answered at once with
``Retry-After``; a request from the same key before that time has passed is refused too,
but only when that time comes. Each connection of a client that does not wait as told then
gets about one answer a second, whatever it sends; a client that waits never notices.

Only keys that passed the key check are ever refused (``serving.auth``), so the table holds
at most one entry per such key; ``max_keys`` (least recently refused dropped first) bounds it anyway.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from dropout_risk.serving.ratelimit import MAX_KEYS


class Backoff:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS):
        self.clock = clock
        self.max_keys = max_keys
        self._retry_at: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._retry_at)

    def hold(self, key: str, retry_after: float) -> float:
        """Seconds to hold this refusal of ``key`` before answering it (0: at once).

        Only an answered refusal sets when the key may retry. A held one waits ``retry_after``
        from its own arrival, not until that shared time: released together, a client's 64
        connections came back together, and the burst of them once a second was what the
        other clinic's slowest requests waited behind.
        """
        now = self.clock()
        if now < self._retry_at.get(key, 0.0):
            return retry_after
        self._retry_at.pop(key, None)
        self._retry_at[key] = now + retry_after
        if len(self._retry_at) > self.max_keys:
            self._retry_at.popitem(last=False)
        return 0.0
