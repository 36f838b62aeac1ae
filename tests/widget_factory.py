"""Helpers for the widget tests: settings with a widget secret and origin, conversations."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.config import Settings
from helpdesk.models import OutboundEmail, Ticket, WidgetConversation
from helpdesk.widget.identity import sign_identity
from tests.factories import T0
from tests.outbound_factory import parse, text_part

WIDGET_SECRET = "widget-secret-for-tests-0123456789"
COURSE_SITE = "https://kurs.example"
CONVERSATIONS = "/api/v1/widget/conversations"


def widget_settings(settings: Settings, **changes: Any) -> Settings:
    """The test settings with the widget secret and the course site as allowed origin."""
    return msgspec.structs.replace(
        settings, widget_secret=WIDGET_SECRET, widget_origins=(COURSE_SITE,), **changes
    )


def freeze(runtime: Runtime) -> FrozenClock:
    clock = FrozenClock(T0)
    runtime.clock = clock
    return clock


def no_delivery_kicks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave queued mail queued, so tests look at the outbox as the request left it."""

    async def leave_queued(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr("helpdesk.widget.api.kick_delivery", leave_queued)
    monkeypatch.setattr("helpdesk.outbound.api.kick_delivery", leave_queued)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def identity_token(
    external_id: str = "L-1001", email: str = "kari@example.no", valid_for: int = 600
) -> str:
    return sign_identity(WIDGET_SECRET, external_id, email, int(T0.timestamp()) + valid_for)


async def start(client: httpx.AsyncClient, **fields: Any) -> tuple[str, str]:
    """Start a conversation as Kari; returns (conversation id, token)."""
    body = {
        "name": "Kari Nordmann",
        "email": "kari@example.no",
        "message": "Hei, hvor er kursbeviset?",
    }
    body.update(fields)
    response = await client.post(CONVERSATIONS, json=body)
    assert response.status_code == 201, response.text
    return response.json()["conversation"]["id"], response.json()["token"]


async def conversation_row(runtime: Runtime, public_id: str) -> WidgetConversation:
    async with runtime.sessions() as session:
        row = await session.scalar(
            select(WidgetConversation).where(WidgetConversation.public_id == public_id)
        )
    assert row is not None
    return row


async def ticket_of(runtime: Runtime, public_id: str) -> Ticket:
    conversation = await conversation_row(runtime, public_id)
    async with runtime.sessions() as session:
        ticket = await session.get(Ticket, conversation.ticket_id)
    assert ticket is not None
    return ticket


async def outbox(runtime: Runtime, kind: str | None = None) -> list[OutboundEmail]:
    async with runtime.sessions() as session:
        query = select(OutboundEmail).order_by(OutboundEmail.id)
        if kind is not None:
            query = query.where(OutboundEmail.kind == kind)
        return list((await session.scalars(query)).all())


def code_in(row: OutboundEmail) -> str:
    """The six-digit code of a verification mail."""
    match = re.search(r"\b(\d{6})\b", text_part(parse(row.raw)))
    assert match is not None
    return match.group(1)


def monotonic_offset(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the rate limiter believe `seconds` more have passed."""
    real = time.monotonic
    monkeypatch.setattr("helpdesk.widget.api.time.monotonic", lambda: real() + seconds)
