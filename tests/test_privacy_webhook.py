"""Signed platform events (DESIGN §6) against a real local HTTP server: refused at first,
retried with back-off, acknowledged by a 2xx, never sent twice once acknowledged."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgspec
import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import PlatformEvent
from helpdesk.privacy.webhook import deliver_due_events, queue_platform_event
from tests.factories import T0

SECRET = "platform-webhook-secret-0123456789"


class Platform:
    """The course platform's webhook endpoint: answers from a script of status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[bytes, dict[str, str]]] = []


@pytest.fixture
def platform() -> Iterator[tuple[Platform, str]]:
    state = Platform([503, 204])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/helpdesk-events"
    server.shutdown()
    server.server_close()


async def test_event_is_signed_retried_after_a_failure_and_acknowledged_once(
    runtime, platform
) -> None:
    state, url = platform
    clock = FrozenClock(T0)
    runtime.clock = clock
    runtime.settings = msgspec.structs.replace(
        runtime.settings, platform_webhook_url=url, platform_webhook_secret=SECRET
    )
    async with transaction(runtime.sessions) as session:
        await queue_platform_event(session, "learner.erasure_requested", "L-1001", now=T0)

    assert await deliver_due_events(runtime) == 0  # 503: not acknowledged
    async with transaction(runtime.sessions) as session:
        (event,) = await session.scalars(select(PlatformEvent))
        assert (event.status, event.attempts, event.last_error) == ("pending", 1, "HTTP 503")
        assert event.next_attempt_at is not None and event.next_attempt_at > T0
    assert await deliver_due_events(runtime) == 0  # not due yet: nothing sent
    assert len(state.received) == 1

    clock.instant = T0 + timedelta(minutes=5)
    assert await deliver_due_events(runtime) == 1
    assert await deliver_due_events(runtime) == 0  # acknowledged: never again
    assert len(state.received) == 2

    first, second = state.received
    assert first[0] == second[0]  # the same event, byte for byte (the platform deduplicates by id)
    body, headers = second
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-helpdesk-signature"] == expected
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert set(document) == {"id", "type", "external_id", "occurred_at"}
    assert (document["type"], document["external_id"]) == ("learner.erasure_requested", "L-1001")
    assert document["occurred_at"] == "2026-11-21T10:00:00Z"
    async with transaction(runtime.sessions) as session:
        (event,) = await session.scalars(select(PlatformEvent))
        assert (event.status, event.attempts) == ("delivered", 2)


async def test_unreachable_platform_keeps_the_event_for_later(runtime) -> None:
    runtime.clock = FrozenClock(T0)
    runtime.settings = msgspec.structs.replace(
        runtime.settings,
        platform_webhook_url="http://127.0.0.1:9/nothing-listens",
        platform_webhook_secret=SECRET,
    )
    async with transaction(runtime.sessions) as session:
        await queue_platform_event(session, "learner.rectified", "L-1001", now=T0)
    assert await deliver_due_events(runtime) == 0
    async with transaction(runtime.sessions) as session:
        (event,) = await session.scalars(select(PlatformEvent))
        assert event.status == "pending" and event.attempts == 1 and event.last_error
