"""Widget and form rate limits shared by every web process through a real Redis, and still
a brake (per process) while Redis is away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from helpdesk.app import create_app
from helpdesk.bootstrap import build_runtime
from helpdesk.errors import RateLimited
from helpdesk.widget.limits import Limit, MemoryRateLimiter, RedisRateLimiter
from tests.conftest import reset_database
from tests.widget_factory import CONVERSATIONS, auth, no_delivery_kicks, start, widget_settings

pytest_plugins = ["tests.peers.redis"]

THREE_A_MINUTE = Limit(3, 60, "Please wait a moment.")


@pytest.fixture
def prefix() -> str:
    return f"helpdesk-test-limits:{uuid.uuid4().hex}:"


async def test_two_processes_count_against_one_limit(redis_url: str, prefix: str) -> None:
    web_a, web_b = RedisRateLimiter(redis_url, prefix), RedisRateLimiter(redis_url, prefix)
    try:
        await web_a.hit("post-conversation", "c1", THREE_A_MINUTE)
        await web_b.hit("post-conversation", "c1", THREE_A_MINUTE)
        await web_a.hit("post-conversation", "c1", THREE_A_MINUTE)
        with pytest.raises(RateLimited) as refused:
            await web_b.hit("post-conversation", "c1", THREE_A_MINUTE)
        assert refused.value.detail == "Please wait a moment."
        assert 1 <= refused.value.retry_after <= 60
        # Other keys and other limits have windows of their own.
        await web_b.hit("post-conversation", "c2", THREE_A_MINUTE)
        await web_b.hit("post-ip", "c1", THREE_A_MINUTE)
    finally:
        await web_a.close()
        await web_b.close()


@pytest.mark.parametrize("where", ["redis", "process"])
async def test_a_request_checked_against_two_limits_is_counted_in_both_or_neither(
    request: pytest.FixtureRequest, prefix: str, where: str
) -> None:
    limiter = (
        RedisRateLimiter(request.getfixturevalue("redis_url"), prefix)
        if where == "redis"
        else MemoryRateLimiter()
    )
    per_ip = Limit(5, 60, "Your network is sending too much.")
    try:
        for _ in range(3):
            await limiter.hit_all(
                [("post-ip", "10.0.0.1", per_ip), ("post-c", "c1", THREE_A_MINUTE)]
            )
        with pytest.raises(RateLimited) as refused:
            await limiter.hit_all(
                [("post-ip", "10.0.0.1", per_ip), ("post-c", "c1", THREE_A_MINUTE)]
            )
        assert refused.value.detail == "Please wait a moment."  # the conversation's limit
        # The refused request did not use up the address's window: two more fit, not one.
        await limiter.hit_all([("post-ip", "10.0.0.1", per_ip), ("post-c", "c2", THREE_A_MINUTE)])
        await limiter.hit_all([("post-ip", "10.0.0.1", per_ip), ("post-c", "c3", THREE_A_MINUTE)])
        with pytest.raises(RateLimited) as refused:
            await limiter.hit_all(
                [("post-ip", "10.0.0.1", per_ip), ("post-c", "c4", THREE_A_MINUTE)]
            )
        assert refused.value.detail == "Your network is sending too much."
    finally:
        await limiter.close()


def test_a_full_table_of_windows_forgets_idle_keys_and_still_counts_new_ones() -> None:
    limiter = MemoryRateLimiter(max_keys=3)
    once = Limit(1, 60, "Wait.")
    limiter.hit_all_at([("post-ip", "10.0.0.1", once), ("post-c", "c1", once)], now=0)

    # An hour later the table is full for two more keys: the idle ones make room, and
    # both new windows keep their hit.
    limiter.hit_all_at([("post-ip", "10.0.0.2", once), ("post-c", "c2", once)], now=4000)

    for check in [("post-ip", "10.0.0.2", once), ("post-c", "c2", once)]:
        with pytest.raises(RateLimited):
            limiter.hit_all_at([check], now=4001)


async def test_a_window_empties_as_its_hits_grow_old(redis_url: str, prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix)
    try:
        brief = Limit(1, 0.3, "Wait.")
        await limiter.hit("start-ip", "10.0.0.1", brief)
        with pytest.raises(RateLimited):
            await limiter.hit("start-ip", "10.0.0.1", brief)
        await asyncio.sleep(0.4)
        await limiter.hit("start-ip", "10.0.0.1", brief)
    finally:
        await limiter.close()


async def test_without_redis_the_limit_is_counted_in_the_process(prefix: str) -> None:
    # Nothing listens on port 9: learners are not refused because Redis is down.
    limiter = RedisRateLimiter("redis://127.0.0.1:9/0", prefix)
    try:
        for _ in range(3):
            await limiter.hit("post-ip", "10.0.0.1", THREE_A_MINUTE)
        with pytest.raises(RateLimited):
            await limiter.hit("post-ip", "10.0.0.1", THREE_A_MINUTE)
    finally:
        await limiter.close()


@pytest.fixture
async def two_web_processes(
    settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two applications on one database and one Redis, as two `helpdesk serve` processes."""
    no_delivery_kicks(monkeypatch)
    shared = msgspec.structs.replace(
        widget_settings(settings), redis_url=redis_url, widget_posts_per_minute=3
    )
    # A deployment of its own (the limits' key prefix), so earlier runs' windows do not count.
    monkeypatch.setenv("HELPDESK_TASK_QUEUE", f"helpdesk-test:{uuid.uuid4().hex}")
    runtimes = [build_runtime(shared), build_runtime(shared)]
    await reset_database(runtimes[0])
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(shared, runtime)),
            base_url="http://testserver",
        )
        for runtime in runtimes
    ]
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.aclose()
        for runtime in runtimes:
            await runtime.close()


async def test_posts_through_either_web_process_share_the_conversation_limit(
    two_web_processes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    web_a, web_b = two_web_processes
    conversation, token = await start(web_a)
    url = f"{CONVERSATIONS}/{conversation}/messages"
    for n, web in enumerate((web_a, web_b, web_a)):
        posted = await web.post(url, json={"body": f"{n}"}, headers=auth(token))
        assert posted.status_code == 201, posted.text

    refused = await web_b.post(url, json={"body": "en til"}, headers=auth(token))

    assert refused.status_code == 429
    assert "Please wait" in refused.json()["detail"]


def test_the_in_process_limiter_is_the_default_without_redis(settings) -> None:
    runtime = build_runtime(settings)
    assert isinstance(runtime.limiter, MemoryRateLimiter)
