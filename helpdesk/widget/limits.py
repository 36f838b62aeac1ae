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
from collections.abc import Sequence
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


# One window to count a hit in: (limit name, key, limit), e.g. ("post-ip", "10.0.0.1", …).
Check = tuple[str, str, Limit]


class RateLimiter(Protocol):
    async def hit(self, name: str, key: str, limit: Limit) -> None:
        """Count one hit, or raise RateLimited when the window is already full."""

    async def hit_all(self, checks: Sequence[Check]) -> None:
        """Count one hit in each window, or none and raise RateLimited when one is full."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Sliding-window counters keyed by (limit name, key), in this process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._max_keys = max_keys

    async def hit(self, name: str, key: str, limit: Limit) -> None:
        self.hit_all_at([(name, key, limit)], time.monotonic())

    async def hit_all(self, checks: Sequence[Check]) -> None:
        self.hit_all_at(checks, time.monotonic())

    def hit_all_at(self, checks: Sequence[Check], now: float) -> None:
        if len(self._hits) + len(checks) > self._max_keys:
            self._forget_idle(now)  # before taking windows out, so none is dropped meanwhile
        windows = [self._window(name, key, limit, now) for name, key, limit in checks]
        for window, (_, _, limit) in zip(windows, checks, strict=True):
            if len(window) >= limit.hits:
                raise RateLimited(limit.message, _retry_after(window[0] + limit.seconds - now))
        for window in windows:
            window.append(now)

    def _window(self, name: str, key: str, limit: Limit, now: float) -> deque[float]:
        """The key's recent hits, those that left the window dropped."""
        window = self._hits.get((name, key))
        if window is None:
            window = self._hits[(name, key)] = deque()
        while window and window[0] <= now - limit.seconds:
            window.popleft()
        return window

    async def close(self) -> None:
        return None

    def _forget_idle(self, now: float, horizon: float = 3600.0) -> None:
        for key in [k for k, w in self._hits.items() if not w or w[-1] < now - horizon]:
            del self._hits[key]


# One sorted set per key, scored by the time of each hit. For each key: drop the hits that
# left its window; if one window is full, refuse (naming which, and when its oldest hit
# leaves) and count nothing; else add this hit to every key. A script, so two processes
# counting the same key at once cannot both slip in. ARGV: now, member, then the window
# seconds and the hits allowed of each key in turn.
_SLIDING_WINDOWS = """
local now, member = tonumber(ARGV[1]), ARGV[2]
for i, key in ipairs(KEYS) do
  local window, hits = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= hits then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, tostring(tonumber(oldest[2]) + window - now)}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[1 + 2 * i]) * 1000))
end
return false
"""


class RedisRateLimiter:
    """The same windows in Redis, shared by every process that uses the same prefix."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        from redis import asyncio as redis_asyncio  # imported here: no I/O at import

        self._redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=2, client_name="helpdesk-limits"
        )
        self._script: Any = self._redis.register_script(_SLIDING_WINDOWS)
        self._prefix = prefix
        self._fallback = MemoryRateLimiter()

    async def hit(self, name: str, key: str, limit: Limit) -> None:
        await self.hit_all([(name, key, limit)])

    async def hit_all(self, checks: Sequence[Check]) -> None:
        """All the windows in one script call: one round trip for a request's limits."""
        now = time.time()  # wall-clock time: the windows are shared between machines
        args: list[Any] = [repr(now), f"{now:.6f}:{secrets.token_hex(4)}"]
        for _, _, limit in checks:
            args += [repr(limit.seconds), limit.hits]
        try:
            refused = await self._script(
                keys=[f"{self._prefix}{name}:{key}" for name, key, _ in checks], args=args
            )
        except Exception as exc:  # Redis away: count here rather than refuse everyone
            names = [name for name, _, _ in checks]
            log.warning("rate limits %s counted in this process: Redis failed (%s)", names, exc)
            await self._fallback.hit_all(checks)
            return
        if refused:
            which, retry = refused
            limit = checks[int(which) - 1][2]
            raise RateLimited(limit.message, _retry_after(float(retry)))

    async def close(self) -> None:
        await self._redis.aclose()


def build_limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    """Redis-backed when Redis is configured, else in this process."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
