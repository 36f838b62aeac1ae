"""Operator replies on widget tickets reach a verified learner by mail only if unseen.

The mail is held back two minutes and cancelled when the widget reports it shown; an
unverified address never gets mail; the mail links back to the conversation, and an
answer to it lands in the same ticket.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.adapters.smtp import FileTransport
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import OutboundEmail
from helpdesk.outbound.delivery import deliver_due
from helpdesk.widget.followup import LINK_DAYS, MAIL_DELAY
from tests.factories import T0, add_learner_with_history, add_operator, bearer
from tests.mail_factory import make_mail
from tests.outbound_factory import parse, text_part
from tests.widget_factory import (
    CONVERSATIONS,
    auth,
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


@pytest.fixture
async def agent(runtime, clock) -> dict[str, str]:
    return bearer(await add_operator(runtime, "ola@kurs.example", "Ola Agent"))


@pytest.fixture
def relay(tmp_path: Path) -> FileTransport:
    return FileTransport(tmp_path / "sent")


async def verified_conversation(runtime, client) -> tuple[str, str, int]:
    await add_learner_with_history(runtime, email="kari@example.no")
    conversation, token = await start(client, identity_token=identity_token())
    return conversation, token, (await ticket_of(runtime, conversation)).number


async def reply(client, agent, number: int, body: str = "Kursbeviset er sendt på nytt.") -> int:
    response = await client.post(
        f"/api/v1/tickets/{number}/replies", json={"body": body}, headers=agent
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def sent_files(relay: FileTransport) -> list[Path]:
    return sorted(relay.directory.glob("*.eml")) if relay.directory.exists() else []


async def test_a_reply_shown_in_the_widget_is_not_mailed(
    runtime, client, agent, clock, relay
) -> None:
    conversation, token, number = await verified_conversation(runtime, client)
    message_id = await reply(client, agent, number)
    (held,) = await outbox(runtime, "reply")
    assert held.next_attempt_at == T0 + MAIL_DELAY

    clock.advance(timedelta(seconds=30))
    shown = await client.post(
        f"{CONVERSATIONS}/{conversation}/displayed",
        json={"message": message_id},
        headers=auth(token),
    )

    assert shown.status_code == 200 and shown.json() == {"cancelled_mails": 1}
    assert await outbox(runtime, "reply") == []
    await deliver_due(runtime, relay, now=T0 + timedelta(minutes=5))
    assert sent_files(relay) == []


async def test_a_reply_not_shown_within_two_minutes_is_mailed(
    runtime, client, agent, clock, relay
) -> None:
    conversation, token, number = await verified_conversation(runtime, client)
    await reply(client, agent, number)

    early = await deliver_due(runtime, relay, now=T0 + timedelta(seconds=119))
    assert early.claimed == 0 and sent_files(relay) == []
    await deliver_due(runtime, relay, now=T0 + MAIL_DELAY)

    (file,) = sent_files(relay)
    mail = parse(file.read_bytes())
    assert mail["To"] == "Kari Nordmann <kari@example.no>"
    body = text_part(mail)
    assert "Kursbeviset er sendt på nytt." in body
    link = re.search(r"(http://testserver/support/conversations/\S+)", body)
    assert link is not None
    (row,) = await outbox(runtime, "reply")
    assert row.status == "sent"

    # Showing it afterwards changes nothing: the mail is gone already.
    shown = await client.post(
        f"{CONVERSATIONS}/{conversation}/displayed",
        json={"message": row.message_id},
        headers=auth(token),
    )
    assert shown.json() == {"cancelled_mails": 0}


async def test_an_unverified_address_never_gets_mail(runtime, client, agent, clock, relay) -> None:
    conversation, token = await start(client)
    number = (await ticket_of(runtime, conversation)).number

    await reply(client, agent, number, "Hei, vi hjelper deg her i chatten.")
    await deliver_due(runtime, relay, now=T0 + timedelta(hours=1))

    assert await outbox(runtime) == []
    assert sent_files(relay) == []
    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()
    assert listed["items"][-1]["text"] == "Hei, vi hjelper deg her i chatten."


async def test_an_answer_to_the_reply_mail_lands_in_the_same_conversation(
    runtime, client, agent, clock, relay
) -> None:
    conversation, token, number = await verified_conversation(runtime, client)
    await reply(client, agent, number)
    await deliver_due(runtime, relay, now=T0 + MAIL_DELAY)
    ours = parse(sent_files(relay)[0].read_bytes())

    answer = make_mail(
        sender="Kari Nordmann <kari@example.no>",
        to=str(ours["Reply-To"]),
        subject=f"SV: {ours['Subject']}",
        body="Takk, nå har jeg det!",
        in_reply_to=ours["Message-ID"],
        references=ours["Message-ID"],
    )
    result = await ingest_raw(runtime, answer, "test")

    assert (result.status, result.ticket) == ("appended", number)
    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()
    assert listed["items"][-1]["text"].startswith("Takk, nå har jeg det!")


async def mailed_link(runtime, client, agent, relay) -> tuple[str, str, str]:
    """A verified conversation answered by an operator: its id, token and the link (path)
    in the reply mail that went out."""
    conversation, token, number = await verified_conversation(runtime, client)
    await reply(client, agent, number)
    await deliver_due(runtime, relay, now=T0 + MAIL_DELAY)
    link = re.search(
        r"http://testserver(/support/conversations/\S+)",
        text_part(parse(sent_files(relay)[0].read_bytes())),
    )
    assert link is not None
    return conversation, token, link.group(1)


async def test_the_link_in_the_mail_opens_the_conversation_page(
    runtime, client, agent, clock, relay
) -> None:
    conversation, token, link = await mailed_link(runtime, client, agent, relay)

    page = await client.get(link)
    assert page.status_code == 200
    assert "Kursbeviset er sendt på nytt." in page.text and "Hei, hvor er kursbeviset?" in page.text
    assert page.headers["referrer-policy"] == "same-origin"
    forged = await client.get(f"/support/conversations/{conversation}?sig=0000")
    assert forged.status_code == 404

    csrf = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    sig = link.split("sig=")[1]
    answered = await client.post(
        f"/support/conversations/{conversation}",
        data={"_csrf": csrf.group(1), "sig": sig, "body": "Svar fra lenken"},
        follow_redirects=False,
    )
    assert answered.status_code == 303
    refused = await client.post(
        f"/support/conversations/{conversation}",
        data={"_csrf": "forged", "sig": sig, "body": "CSRF"},
    )
    assert refused.status_code == 403
    listed = (
        await client.get(f"{CONVERSATIONS}/{conversation}/messages", headers=auth(token))
    ).json()
    assert [m["text"] for m in listed["items"]][-1] == "Svar fra lenken"


async def test_the_link_in_the_mail_expires_and_cannot_be_extended_by_hand(
    runtime, client, agent, clock, relay
) -> None:
    conversation, _, link = await mailed_link(runtime, client, agent, relay)
    expires, signature = link.split("sig=")[1].split(".")

    clock.advance(timedelta(days=LINK_DAYS - 1))
    assert (await client.get(link)).status_code == 200
    clock.advance(timedelta(days=2))
    expired = await client.get(link)
    assert expired.status_code == 404 and "This link has expired" in expired.text
    # Moving the expiry forward breaks the signature: the link is then simply not valid.
    later = int(expires) + 365 * 86400
    altered = await client.get(f"/support/conversations/{conversation}?sig={later}.{signature}")
    assert altered.status_code == 404 and "not valid" in altered.text
    assert "has expired" not in altered.text


async def test_held_back_mail_already_leased_by_delivery_is_not_cancelled(
    runtime, client, agent, clock, relay
) -> None:
    conversation, token, number = await verified_conversation(runtime, client)
    message_id = await reply(client, agent, number)
    async with runtime.sessions() as session, session.begin():
        row = (await session.scalars(select(OutboundEmail))).one()
        row.claimed_until = T0 + timedelta(minutes=10)  # a worker is sending it right now

    shown = await client.post(
        f"{CONVERSATIONS}/{conversation}/displayed",
        json={"message": message_id},
        headers=auth(token),
    )

    assert shown.json() == {"cancelled_mails": 0}
    assert len(await outbox(runtime, "reply")) == 1
