"""What the widget shows of a conversation: one statement read by the live stream and the API."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from helpdesk.db import reading, transaction
from helpdesk.models import Attachment, Message, Ticket
from helpdesk.tickets import service as tickets
from helpdesk.widget.feed import PAGE, conversation_ticket, learner_feed
from tests.factories import T0, add_ticket, learner_mail


def file_row(message_id: int, name: str, *, inline: bool = False) -> Attachment:
    return Attachment(
        message_id=message_id,
        filename=name,
        content_type="image/png",
        size=len(name),
        sha256="0" * 64,
        storage_path=f"ab/{name}",
        inline=inline,
    )


async def test_each_visible_message_comes_once_with_its_own_files_in_order(runtime) -> None:
    ticket = await add_ticket(runtime, channel="widget", text="Hei, se skjermbildene.")
    async with transaction(runtime.sessions) as session:
        row = await session.get(Ticket, ticket.id)
        assert row is not None
        reply = await tickets.append_message(
            session,
            row,
            tickets.MessageDraft(
                direction="outbound",
                text="Svar\n\n> Hei, se skjermbildene.",
                reply_text="Svar",
                author_kind="operator",
                author_name="Ola Agent",
            ),
            now=T0 + timedelta(minutes=1),
        )
        note = await tickets.append_message(
            session,
            row,
            tickets.MessageDraft(direction="note", text="internt", author_kind="operator"),
            now=T0 + timedelta(minutes=2),
        )
        await tickets.append_message(
            session, row, learner_mail("Takk!"), now=T0 + timedelta(minutes=3)
        )
        learner_first = await session.scalar(
            select(func.min(Message.id)).where(col(Message.ticket_id) == row.id)
        )
        assert learner_first is not None and reply.id is not None and note.id is not None
        session.add_all(
            [
                file_row(learner_first, "b.png"),
                file_row(learner_first, "a.png"),
                file_row(reply.id, "logo.png", inline=True),  # part of the mail's HTML only
                file_row(note.id, "intern.png"),
            ]
        )

    async with reading(runtime.engine) as connection:
        feed = await learner_feed(connection, ticket.id or 0)
        later = await learner_feed(connection, ticket.id or 0, after=reply.id)

    assert [(m.direction, m.text) for m in feed] == [
        ("inbound", "Hei, se skjermbildene."),
        ("outbound", "Svar"),  # the reply without its quoted history; the note is not here
        ("inbound", "Takk!"),
    ]
    assert [a.filename for a in feed[0].attachments] == ["b.png", "a.png"]  # in upload order
    assert feed[1].attachments == [] and feed[2].attachments == []
    assert feed[1].author.kind == "operator" and feed[1].author.name == "Ola Agent"
    assert [m.text for m in later] == ["Takk!"]


async def test_a_long_conversation_is_read_a_page_at_a_time(runtime) -> None:
    ticket = await add_ticket(runtime, channel="widget", text="melding 0")
    async with transaction(runtime.sessions) as session:
        row = await session.get(Ticket, ticket.id)
        assert row is not None
        for n in range(1, PAGE + 3):
            await tickets.append_message(session, row, learner_mail(f"melding {n}"), now=T0)
    async with reading(runtime.engine) as connection:
        page = await learner_feed(connection, ticket.id or 0)
        rest = await learner_feed(connection, ticket.id or 0, after=page[-1].id)
        assert await conversation_ticket(connection, 10_000) is None
    assert len(page) == PAGE and page[0].text == "melding 0"
    assert [m.text for m in rest] == [f"melding {n}" for n in (PAGE, PAGE + 1, PAGE + 2)]
