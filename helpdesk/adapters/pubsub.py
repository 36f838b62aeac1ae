"""Publish/subscribe for live updates: in-process by default, Redis across processes.

Events are nudges, not the data: a subscriber that receives `{"type": "message", …}` on
`ticket:42` reads what changed from the database. So an event lost while Redis restarts
costs nothing but latency: after reconnecting, every subscriber gets a `resync` event and
re-reads. Publishing never fails the caller's operation (it runs after the commit).

Channel names used by the application: `ticket:<id>` (messages, status, presence) and
`inbox` (queue counts changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("helpdesk.pubsub")

# Sent to every local subscriber after events may have been missed (Redis reconnected).
RESYNC: dict[str, Any] = {"type": "resync"}
# A subscriber slower than this many events loses the oldest ones (it is sent a resync).
QUEUE_LIMIT = 256


@dataclass(frozen=True)
class Event:
    channel: str
    data: dict[str, Any]


class Subscription:
    """Events of the channels subscribed to, in order of arrival."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_LIMIT)

    def deliver(self, event: Event) -> None:
        if self._queue.full():  # drop the oldest and tell the reader to re-read
            self._queue.get_nowait()
            event = Event(event.channel, RESYNC)
        self._queue.put_nowait(event)

    async def next_within(self, seconds: float) -> Event | None:
        """The next event, or None when `seconds` pass without one (SSE heartbeats)."""
        try:
            return await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class PubSub(Protocol):
    async def publish(self, channel: str, data: Mapping[str, Any]) -> None: ...

    async def publish_all(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Several events at once, in order (a transaction's announcements)."""
        ...

    def subscribe(self, *channels: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


@dataclass
class _Hub:
    """Fans events out to the subscriptions of this process."""

    by_channel: dict[str, set[Subscription]] = field(default_factory=dict)

    def add(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            self.by_channel.setdefault(channel, set()).add(subscription)

    def remove(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            members = self.by_channel.get(channel)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self.by_channel[channel]

    def deliver(self, channel: str, data: dict[str, Any]) -> None:
        for subscription in tuple(self.by_channel.get(channel, ())):
            subscription.deliver(Event(channel, data))

    def deliver_everywhere(self, data: dict[str, Any]) -> None:
        for channel in tuple(self.by_channel):
            self.deliver(channel, data)

    @property
    def subscriber_count(self) -> int:
        return len({s for members in self.by_channel.values() for s in members})


class InMemoryPubSub:
    """One process: the embedded mode and unit tests."""

    def __init__(self) -> None:
        self._hub = _Hub()

    async def publish(self, channel: str, data: Mapping[str, Any]) -> None:
        self._hub.deliver(channel, dict(data))

    async def publish_all(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        for channel, data in events:
            self._hub.deliver(channel, dict(data))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(channels)
        self._hub.add(subscription)
        try:
            yield subscription
        finally:
            self._hub.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        return self._hub.subscriber_count

    async def close(self) -> None:
        return None


class RedisPubSub:
    """Across processes through Redis PUBLISH; one pattern subscription per process.

    Each process keeps a single Redis connection listening on `<prefix>*` and fans events
    out locally, so a thousand SSE clients cost one Redis connection, not a thousand.
    """

    def __init__(
        self, redis_url: str, prefix: str = "helpdesk:live:", client_name: str = "helpdesk-live"
    ) -> None:
        from redis import asyncio as redis_asyncio  # imported here: no I/O at import

        self._redis = redis_asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=3, client_name=client_name
        )
        self._prefix = prefix
        self._hub = _Hub()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def publish(self, channel: str, data: Mapping[str, Any]) -> None:
        await self.publish_all([(channel, data)])

    async def publish_all(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """One round trip for all of them (a pipeline without MULTI)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, data in events:
                    payload = json.dumps(dict(data), separators=(",", ":"))
                    pipe.publish(self._prefix + channel, payload)
                await pipe.execute()
        except Exception as exc:  # nudges lost; subscribers resync when Redis is back
            log.warning("live updates not published on %s: %s", [c for c, _ in events], exc)

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="pubsub-listener")
        subscription = Subscription(channels)
        self._hub.add(subscription)
        try:
            # Wait briefly for the first subscription, so an event published right after
            # subscribe() returns is not missed; after that, resync covers any gap.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 3)
            yield subscription
        finally:
            self._hub.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        return self._hub.subscriber_count

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(self._prefix + "*")
                    if self._listening.is_set():  # a reconnect: events may have been missed
                        self._hub.deliver_everywhere(RESYNC)
                    self._listening.set()
                    delay = 0.2
                    await self._relay(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live updates from Redis interrupted (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _relay(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
            if message is None or message.get("type") != "pmessage":
                continue
            channel = message["channel"].decode()[len(self._prefix) :]
            try:
                data = json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("ignored a malformed live update on %s", channel)
                continue
            self._hub.deliver(channel, data)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()


def build_pubsub(redis_url: str | None, prefix: str = "helpdesk:live:") -> PubSub:
    """Redis pub/sub when Redis is configured, the in-process hub otherwise."""
    return RedisPubSub(redis_url, prefix=prefix) if redis_url else InMemoryPubSub()
