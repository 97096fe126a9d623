"""A per-key token bucket in process memory: one clinic's burst cannot starve the others.

One clinic's 64 concurrent 500-session scores raised another clinic's p95 from 6 ms to
977 ms. Each API key gets ``burst`` requests at once and ``rate`` a second after that;
beyond it the request is answered 429 with ``Retry-After`` before anything is read or run.

A bucket is created only for a key that passed the key check, and is consulted before the
next lookup (``serving.auth``): a key over its limit is refused without a database read,
while a bearer never seen valid costs its lookup and leaves nothing behind. Random bearers
therefore cannot grow the table; ``max_keys`` (least recently used dropped first) bounds it
anyway, since keys can be issued and revoked without end. A dropped bucket comes back full:
at worst a key regains its burst. Per process: with several workers the limit is per worker.

A request's token is taken before its body is read, so a 200-session score and a 5-session one
cost the same there; a route that learns the work afterwards ``charge``s the rest. The bucket may
then go below zero (down to ``-burst``): the request already runs, the key's next ones wait until
the debt is repaid at ``rate``. Counting requests alone let one clinic's large scores take half a
core within its limit and slow another clinic's small ones about fourfold.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import anyio.from_thread

MAX_KEYS = 10_000  # far above the keys a deployment issues; each bucket is ~200 bytes


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def wait(self, key: str) -> float:
        """Takes a token for ``key`` and returns 0, or returns how many seconds until one is free.

        Called on the event loop with no await inside: no lock is needed.
        """
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        self._refill(bucket, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def charge(self, key: str, tokens: float) -> None:
        """Takes ``tokens`` more from ``key``'s bucket, down to ``-burst`` at most; a key without one pays nothing.

        Called on the event loop (``WorkMeter`` brings it there) with no await inside: no lock is needed.
        """
        bucket = self._buckets.get(key)
        if bucket is None or tokens <= 0:
            return
        self._refill(bucket, self.clock())
        bucket.tokens = max(-float(self.burst), bucket.tokens - tokens)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        """The tokens earned at ``rate`` since the bucket was last touched, never above the burst."""
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now


@dataclass(frozen=True)
class WorkMeter:
    """What a route charges for the work it learns of after the key's one token was taken."""

    limiter: RateLimiter | None
    key: str | None  # the key's digest, as the limiter knows it; None when no key was checked
    sessions_per_request: int  # serving.rate_limit_sessions

    def score(self, sessions: int) -> None:
        """From a route's worker thread: one more token per started block of ``sessions_per_request``."""
        extra = math.ceil(sessions / self.sessions_per_request) - 1
        if self.limiter is not None and self.key is not None and extra > 0:
            # The buckets belong to the event loop (wait runs there without a lock): charge there too.
            anyio.from_thread.run_sync(self.limiter.charge, self.key, float(extra))


def retry_after(seconds: float) -> str:
    """Whole seconds, rounded up (HTTP's Retry-After has no fractions), at least 1."""
    return str(max(1, math.ceil(seconds)))
