"""Live-update pub/sub: events reach subscribers in this process and, through a real Redis,
in other processes; after Redis drops the connection, subscribers are told to resync."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from helpdesk.adapters.pubsub import InMemoryPubSub, RedisPubSub
from helpdesk.db import transaction
from helpdesk.live import wait_for_published
from helpdesk.tickets import service as tickets
from tests.factories import T0, add_ticket, learner_mail

pytest_plugins = ["tests.peers.redis"]


async def test_in_memory_subscriber_gets_events_of_its_channels_only() -> None:
    pubsub = InMemoryPubSub()
    async with pubsub.subscribe("ticket:1") as subscription:
        await pubsub.publish("ticket:2", {"type": "message", "id": 7})
        await pubsub.publish("ticket:1", {"type": "message", "id": 8})
        event = await subscription.next_within(1)
    assert event is not None and event.channel == "ticket:1" and event.data["id"] == 8
    assert await subscription.next_within(0.05) is None
    assert pubsub.subscriber_count == 0  # leaving the block unsubscribes


async def test_a_slow_subscriber_is_told_to_resync_instead_of_growing_without_bound() -> None:
    pubsub = InMemoryPubSub()
    async with pubsub.subscribe("inbox") as subscription:
        for n in range(1000):
            await pubsub.publish("inbox", {"type": "counts", "n": n})
        seen = [await subscription.next_within(1) for _ in range(256)]
    assert any(event is not None and event.data["type"] == "resync" for event in seen)


@pytest.fixture
def prefix() -> str:
    return f"helpdesk-test-live:{uuid.uuid4().hex}:"


@pytest.fixture
async def two_processes(
    redis_url: str, prefix: str
) -> AsyncIterator[tuple[RedisPubSub, RedisPubSub]]:
    """The pub/sub of two web processes on one Redis: (publisher, listener)."""
    publisher = RedisPubSub(redis_url, prefix=prefix)
    listener = RedisPubSub(redis_url, prefix=prefix)
    try:
        yield publisher, listener
    finally:
        await publisher.close()
        await listener.close()


async def test_event_published_by_one_process_reaches_subscribers_of_another(
    two_processes: tuple[RedisPubSub, RedisPubSub],
) -> None:
    web_a, web_b = two_processes
    async with web_b.subscribe("ticket:5") as first, web_b.subscribe("ticket:5") as second:
        await web_a.publish("ticket:5", {"type": "message", "id": 42})
        got = [await first.next_within(3), await second.next_within(3)]
    assert [event.data if event else None for event in got] == [{"type": "message", "id": 42}] * 2


async def test_a_transactions_events_arrive_together_and_in_order(
    two_processes: tuple[RedisPubSub, RedisPubSub],
) -> None:
    publisher, listener = two_processes
    async with listener.subscribe("ticket:7", "inbox") as subscription:
        await publisher.publish_all(
            [
                ("ticket:7", {"type": "message", "message": 1}),
                ("inbox", {"type": "ticket", "ticket": 1007}),
                ("ticket:8", {"type": "message", "message": 2}),  # nobody listens here
                ("ticket:7", {"type": "ticket"}),
            ]
        )
        got = [await subscription.next_within(3) for _ in range(3)]
        assert await subscription.next_within(0.3) is None
    assert [(e.channel, e.data) if e else None for e in got] == [
        ("ticket:7", {"type": "message", "message": 1}),
        ("inbox", {"type": "ticket", "ticket": 1007}),
        ("ticket:7", {"type": "ticket"}),
    ]


async def test_subscribers_resync_after_redis_drops_the_connection(
    redis_url: str, prefix: str
) -> None:
    name = f"live-{uuid.uuid4().hex[:10]}"
    publisher = RedisPubSub(redis_url, prefix=prefix)
    listener = RedisPubSub(redis_url, prefix=prefix, client_name=name)
    try:
        async with listener.subscribe("ticket:9") as subscription:
            with redis.Redis.from_url(redis_url) as admin:
                killed = sum(
                    admin.client_kill_filter(_id=client["id"])
                    for client in admin.client_list()
                    if client.get("name") == name
                )
            assert killed >= 1
            event = await subscription.next_within(10)
            assert event is not None and event.data == {"type": "resync"}
            # …and live updates flow again on the new connection.
            for _ in range(50):
                await publisher.publish("ticket:9", {"type": "message", "id": 1})
                event = await subscription.next_within(0.2)
                if event is not None:
                    break
            assert event is not None and event.data == {"type": "message", "id": 1}
    finally:
        await publisher.close()
        await listener.close()


async def test_publishing_while_redis_is_unreachable_does_not_raise() -> None:
    pubsub = RedisPubSub("redis://127.0.0.1:1/0", prefix="unreachable:")
    try:
        await asyncio.wait_for(pubsub.publish("ticket:1", {"type": "message"}), 10)
    finally:
        await pubsub.close()


async def test_a_new_message_is_announced_only_after_its_transaction_commits(runtime) -> None:
    ticket = await add_ticket(runtime)
    async with runtime.pubsub.subscribe(f"ticket:{ticket.id}", "inbox") as subscription:
        with pytest.raises(RuntimeError):
            async with transaction(runtime.sessions) as session:
                found = await tickets.get_ticket(session, ticket.number)
                await tickets.append_message(session, found, learner_mail(), now=T0)
                raise RuntimeError("the reply failed before commit")
        await wait_for_published()
        assert await subscription.next_within(0.1) is None  # rolled back: nothing announced

        async with transaction(runtime.sessions) as session:
            found = await tickets.get_ticket(session, ticket.number)
            message = await tickets.append_message(session, found, learner_mail(), now=T0)
        events = [await subscription.next_within(2), await subscription.next_within(2)]
    assert {(e.channel, str(sorted(e.data.items()))) for e in events if e} == {
        (f"ticket:{ticket.id}", str(sorted({"type": "message", "message": message.id}.items()))),
        ("inbox", str(sorted({"type": "ticket", "ticket": ticket.number}.items()))),
    }
