"""Rate limits of the public widget and form: per client address and per conversation.

A sliding window of recent hits per key, kept in this process. It is a brake on floods
and scripted abuse, not an accounting system: with several web processes each counts on
its own (the limit is then per process), which still bounds the load each one accepts.
The verification-code limits, which protect a learner's mailbox, are counted in the
database instead (`codes`).

Refusals are `RateLimited` (429 with Retry-After) carrying a sentence the widget shows.
"""

from __future__ import annotations

import math
import weakref
from collections import deque
from dataclasses import dataclass

from helpdesk.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    """At most `hits` within `seconds`; `message` is what the learner is told."""

    hits: int
    seconds: float
    message: str


class RateLimiter:
    """Sliding-window counters keyed by (limit name, key)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._max_keys = max_keys

    def hit(self, name: str, key: str, limit: Limit, now: float) -> None:
        """Count one hit, or raise RateLimited when the window is already full."""
        window = self._hits.get((name, key))
        if window is None:
            if len(self._hits) >= self._max_keys:
                self._forget_idle(now)
            window = self._hits[(name, key)] = deque()
        while window and window[0] <= now - limit.seconds:
            window.popleft()
        if len(window) >= limit.hits:
            retry_after = max(1, math.ceil(window[0] + limit.seconds - now))
            raise RateLimited(limit.message, retry_after)
        window.append(now)

    def _forget_idle(self, now: float, horizon: float = 3600.0) -> None:
        for key in [k for k, w in self._hits.items() if not w or w[-1] < now - horizon]:
            del self._hits[key]


_LIMITERS: dict[int, RateLimiter] = {}


def limiter_for(owner: object) -> RateLimiter:
    """The limiter of one runtime (one per process and runtime, forgotten with it)."""
    key = id(owner)
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = RateLimiter()
        weakref.finalize(owner, _LIMITERS.pop, key, None)
    return limiter
