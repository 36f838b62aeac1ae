"""Verifying a widget learner: the platform's signed identity_token, and emailed codes."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import func, select

from helpdesk.errors import Forbidden
from helpdesk.models import AuditEvent, Message, Ticket, VerificationCode
from helpdesk.widget.identity import sign_identity, verify_identity
from tests.factories import T0, add_learner_with_history
from tests.outbound_factory import parse, text_part
from tests.widget_factory import (
    CONVERSATIONS,
    WIDGET_SECRET,
    auth,
    code_in,
    conversation_row,
    freeze,
    identity_token,
    no_delivery_kicks,
    outbox,
    start,
    ticket_of,
    widget_settings,
)


@pytest.fixture
def settings(settings):
    return widget_settings(settings)


@pytest.fixture(autouse=True)
def quiet_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    no_delivery_kicks(monkeypatch)


@pytest.fixture
def clock(runtime):
    return freeze(runtime)


def altered(token: str, **claims: object) -> str:
    """The token with its claims changed but the original signature kept."""
    payload, _, mac = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


# --- identity_token ----------------------------------------------------------------------


def test_the_token_format_is_the_one_in_design() -> None:
    token = sign_identity("s3cret", "L-7", "kari@example.no", 1_900_000_000)
    payload, mac = token.split(".")
    assert "=" not in token
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {
        "sub": "L-7",
        "email": "kari@example.no",
        "exp": 1_900_000_000,
    }
    identity = verify_identity("s3cret", token, T0)
    assert (identity.external_id, identity.email) == ("L-7", "kari@example.no")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot-at-all",
        "a.b.c",
        "!!!.???",
        sign_identity("another secret", "L-1001", "kari@example.no", 1_900_000_000),
        sign_identity(WIDGET_SECRET, "", "kari@example.no", 1_900_000_000),
        sign_identity(WIDGET_SECRET, "L-1001", "not an address", 1_900_000_000),
        sign_identity(WIDGET_SECRET, "L-1001", "kari@example.no", int(T0.timestamp())),
    ],
)
def test_malformed_foreign_or_expired_tokens_are_refused(token: str) -> None:
    with pytest.raises(Forbidden):
        verify_identity(WIDGET_SECRET, token, T0)


def test_without_a_widget_secret_no_token_is_accepted() -> None:
    token = sign_identity(WIDGET_SECRET, "L-1001", "kari@example.no", 1_900_000_000)
    with pytest.raises(Forbidden):
        verify_identity(None, token, T0)


async def test_a_signed_in_learner_is_verified_at_once_and_linked(runtime, client, clock) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")

    conversation, _ = await start(
        client, email="typed@other.example", identity_token=identity_token(email="kari@example.no")
    )

    stored = await conversation_row(runtime, conversation)
    assert stored.verified_at == T0 and stored.verification_method == "identity_token"
    assert stored.learner_id == learner_id and stored.email == "kari@example.no"
    ticket = await ticket_of(runtime, conversation)
    assert ticket.learner_id == learner_id and ticket.requester == "kari@example.no"


@pytest.mark.parametrize(
    "make_token",
    [
        lambda: identity_token(valid_for=-1),  # expired a second ago
        lambda: altered(identity_token(), email="mallory@example.no"),
        lambda: altered(identity_token(), exp=2_000_000_000),
        lambda: identity_token()[:-2] + "AA",  # signature changed
    ],
    ids=["expired", "email-altered", "expiry-altered", "signature-altered"],
)
async def test_an_expired_or_altered_identity_token_creates_nothing(
    runtime, client, clock, make_token
) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")

    response = await client.post(
        CONVERSATIONS,
        json={
            "name": "Kari",
            "email": "kari@example.no",
            "message": "Hei",
            "identity_token": make_token(),
        },
    )

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0


async def test_signing_in_later_verifies_an_existing_conversation(runtime, client, clock) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    conversation, token = await start(client)

    bad = await client.post(
        f"{CONVERSATIONS}/{conversation}/identity",
        json={"identity_token": identity_token(valid_for=-5)},
        headers=auth(token),
    )
    assert bad.status_code == 403
    good = await client.post(
        f"{CONVERSATIONS}/{conversation}/identity",
        json={"identity_token": identity_token()},
        headers=auth(token),
    )

    assert good.status_code == 200 and good.json()["verified"] is True
    assert (await ticket_of(runtime, conversation)).learner_id == learner_id


# --- emailed codes ----------------------------------------------------------------------


async def ask_for_code(client, conversation: str, token: str):
    return await client.post(
        f"{CONVERSATIONS}/{conversation}/verification", json={"locale": "nb"}, headers=auth(token)
    )


async def try_code(client, conversation: str, token: str, code: str):
    return await client.post(
        f"{CONVERSATIONS}/{conversation}/verification/confirm",
        json={"code": code},
        headers=auth(token),
    )


async def test_the_emailed_code_verifies_and_links_the_learner(runtime, client, clock) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    conversation, token = await start(client)

    sent = await ask_for_code(client, conversation, token)

    assert sent.status_code == 202
    (mail,) = await outbox(runtime, "verification")
    assert mail.recipients == ["kari@example.no"]
    code = code_in(mail)
    async with runtime.sessions() as session:
        (stored,) = (await session.scalars(select(VerificationCode))).all()
    assert code not in stored.code_hash and len(stored.code_hash) == 64
    assert stored.expires_at == T0 + timedelta(minutes=10)

    confirmed = await try_code(client, conversation, token, code)

    assert confirmed.status_code == 200 and confirmed.json()["verified"] is True
    row = await conversation_row(runtime, conversation)
    assert row.verification_method == "code" and row.learner_id == learner_id
    assert (await ticket_of(runtime, conversation)).learner_id == learner_id
    async with runtime.sessions() as session:
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert "widget.verified" in actions and "widget.code_sent" in actions


async def test_a_code_allows_five_tries(runtime, client, clock) -> None:
    conversation, token = await start(client)
    await ask_for_code(client, conversation, token)
    (mail,) = await outbox(runtime, "verification")
    code = code_in(mail)
    wrong = "000000" if code != "000000" else "111111"

    answers = [await try_code(client, conversation, token, wrong) for _ in range(5)]

    assert [a.status_code for a in answers] == [403] * 5
    assert [a.json()["tries_left"] for a in answers[:4]] == [4, 3, 2, 1]
    assert "Too many wrong tries" in answers[4].json()["detail"]
    late = await try_code(client, conversation, token, code)
    assert late.status_code == 403 and "Too many wrong tries" in late.json()["detail"]
    assert (await conversation_row(runtime, conversation)).verified_at is None


async def test_a_code_expires_after_ten_minutes(runtime, client, clock) -> None:
    conversation, token = await start(client)
    await ask_for_code(client, conversation, token)
    code = code_in((await outbox(runtime, "verification"))[0])

    clock.advance(timedelta(minutes=10, seconds=1))
    expired = await try_code(client, conversation, token, code)

    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    assert (await conversation_row(runtime, conversation)).verified_at is None


async def test_codes_are_rate_limited_and_a_new_code_replaces_the_old(
    runtime, client, clock
) -> None:
    conversation, token = await start(client)
    assert (await ask_for_code(client, conversation, token)).status_code == 202

    again = await ask_for_code(client, conversation, token)
    assert again.status_code == 429 and again.json()["error"] == "rate_limited"
    assert "seconds" in again.json()["detail"] and int(again.headers["retry-after"]) <= 61

    clock.advance(timedelta(seconds=61))
    assert (await ask_for_code(client, conversation, token)).status_code == 202
    first, second = await outbox(runtime, "verification")
    if code_in(first) != code_in(second):
        old = await try_code(client, conversation, token, code_in(first))
        assert old.status_code == 403
    clock.advance(timedelta(seconds=61))
    assert (await ask_for_code(client, conversation, token)).status_code == 202
    clock.advance(timedelta(seconds=61))
    fourth = await ask_for_code(client, conversation, token)
    assert fourth.status_code == 429 and "an hour" in fourth.json()["detail"]
    latest = code_in((await outbox(runtime, "verification"))[-1])
    assert (await try_code(client, conversation, token, latest)).status_code == 200


async def test_the_code_mail_is_in_the_learners_language(runtime, client, clock) -> None:
    conversation, token = await start(client)
    await ask_for_code(client, conversation, token)
    (mail,) = await outbox(runtime, "verification")
    message = parse(mail.raw)
    assert "Koden din" in str(message["Subject"])
    assert "gjelder i 10 minutter" in text_part(message)
    assert message["Auto-Submitted"] is not None  # robots must not answer it


async def test_verification_settings_without_a_secret(runtime, client, clock) -> None:
    runtime.settings = msgspec.structs.replace(runtime.settings, widget_secret=None)
    response = await client.post(
        CONVERSATIONS,
        json={
            "name": "Kari",
            "email": "kari@example.no",
            "message": "Hei",
            "identity_token": identity_token(),
        },
    )
    assert response.status_code == 403


async def test_operators_see_unproven_widget_messages_as_unverified(runtime, client, clock) -> None:
    conversation, token = await start(client)
    await client.post(
        f"{CONVERSATIONS}/{conversation}/messages", json={"body": "To"}, headers=auth(token)
    )
    async with runtime.sessions() as session:
        before = (await session.scalars(select(Message.sender_verified))).all()
    await client.post(
        f"{CONVERSATIONS}/{conversation}/identity",
        json={"identity_token": identity_token()},
        headers=auth(token),
    )
    await client.post(
        f"{CONVERSATIONS}/{conversation}/messages", json={"body": "Tre"}, headers=auth(token)
    )
    async with runtime.sessions() as session:
        after = (await session.scalars(select(Message.sender_verified))).all()

    assert before == [False, False]
    assert after == [True, True, True]
