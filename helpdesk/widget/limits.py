"""Rate limits of the public widget and form: per client address and per conversation.

A sliding window of recent hits per key. With Redis configured (`HELPDESK_REDIS_URL`, as in
production with several web processes) the windows live in Redis, so every process counts
against the same limit; without it they are kept in the process. When Redis cannot be
reached, the limits fall back to counting in the process rather than refusing learners:
they are a brake on floods and scripted abuse, not an accounting system. The
verification-code limits, which protect a learner's mailbox, are counted in the database
instead (`codes`).

Refusals are `RateLimited` (429 with Retry-After) carrying a sentence the widget shows.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from helpdesk.errors import RateLimited

log = logging.getLogger("helpdesk.widget.limits")


@dataclass(frozen=True)
class Limit:
    """At most `hits` within `seconds`; `message` is what the learner is told."""

    hits: int
    seconds: float
    message: str


class RateLimiter(Protocol):
    async def hit(self, name: str, key: str, limit: Limit) -> None:
        """Count one hit, or raise RateLimited when the window is already full."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Sliding-window counters keyed by (limit name, key), in this process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._max_keys = max_keys

    async def hit(self, name: str, key: str, limit: Limit) -> None:
        self.hit_at(name, key, limit, time.monotonic())

    def hit_at(self, name: str, key: str, limit: Limit, now: float) -> None:
        window = self._hits.get((name, key))
        if window is None:
            if len(self._hits) >= self._max_keys:
                self._forget_idle(now)
            window = self._hits[(name, key)] = deque()
        while window and window[0] <= now - limit.seconds:
            window.popleft()
        if len(window) >= limit.hits:
            raise RateLimited(limit.message, _retry_after(window[0] + limit.seconds - now))
        window.append(now)

    async def close(self) -> None:
        return None

    def _forget_idle(self, now: float, horizon: float = 3600.0) -> None:
        for key in [k for k, w in self._hits.items() if not w or w[-1] < now - horizon]:
            del self._hits[key]


# One sorted set per key, scored by the time of each hit: drop the hits that left the
# window, refuse when it is full (answering when its oldest hit leaves), else add this
# one. A script, so two processes counting the same key at once cannot both slip in.
_SLIDING_WINDOW = """
local now, window, hits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= hits then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return false
"""


class RedisRateLimiter:
    """The same windows in Redis, shared by every process that uses the same prefix."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        from redis import asyncio as redis_asyncio  # imported here: no I/O at import

        self._redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=2, client_name="helpdesk-limits"
        )
        self._script: Any = self._redis.register_script(_SLIDING_WINDOW)
        self._prefix = prefix
        self._fallback = MemoryRateLimiter()

    async def hit(self, name: str, key: str, limit: Limit) -> None:
        now = time.time()  # wall-clock time: the windows are shared between machines
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        try:
            refused = await self._script(
                keys=[f"{self._prefix}{name}:{key}"],
                args=[repr(now), repr(limit.seconds), limit.hits, member],
            )
        except Exception as exc:  # Redis away: count here rather than refuse everyone
            log.warning("rate limit %s counted in this process: Redis failed (%s)", name, exc)
            await self._fallback.hit(name, key, limit)
            return
        if refused is not None:
            raise RateLimited(limit.message, _retry_after(float(refused)))

    async def close(self) -> None:
        await self._redis.aclose()


def build_limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    """Redis-backed when Redis is configured, else in this process."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
