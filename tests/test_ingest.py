"""Inbound mail end to end through `ingest_raw`: threading, duplicates, machine mail, trust.

Each test reads like what an operator would see in the inbox after the mail arrived.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import msgspec
import pytest
from mail_factory import make_mail
from sqlalchemy import select

from helpdesk.adapters.storage import content_address
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbound.outcome import IngestUnavailable
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.inbound.raw_mail import kept_in_row, read_raw
from helpdesk.models import (
    Attachment,
    InboundMail,
    Learner,
    Message,
    Order,
    OutboundEmail,
    Ticket,
    TicketOrder,
)
from helpdesk.outbound.acknowledgements import write_acknowledgements
from helpdesk.outbound.suppression import is_suppressed
from helpdesk.signing import make_message_id, make_reply_address

KARI = "Kari Nordmann <kari.nordmann@example.no>"


async def ticket(runtime: Runtime, number: int) -> Ticket:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert found is not None
        return found


async def messages(
    runtime: Runtime, number: int, directions: tuple[str, ...] = ("inbound", "note")
) -> list[Message]:
    """The ticket's messages, by default without our own outgoing mail (acknowledgements)."""
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(Message)
            .join(Ticket)
            .where(Ticket.number == number, Message.direction.in_(directions))
            .order_by(Message.id)
        )
        return list(rows)


async def add_learner(runtime: Runtime, email: str = "kari.nordmann@example.no") -> Learner:
    async with transaction(runtime.sessions) as session:
        learner = Learner(
            external_id=f"ext-{email}",
            email=email,
            email_key=email.lower(),
            name="Kari Nordmann",
            locale="nb",
        )
        session.add(learner)
        await session.flush()
        return learner


async def test_new_mail_opens_a_ticket_with_the_reply_part_separated(runtime: Runtime) -> None:
    body = "Takk, men beviset mangler fortsatt.\n\nDen 19. nov. 2026 skrev Support:\n> Hei Kari"
    result = await ingest_raw(runtime, make_mail(body=body), "test")
    assert result.status == "created" and result.reason == "new"
    [message] = await messages(runtime, result.ticket)
    assert message.thread_reason == "new"
    assert message.reply_text.strip() == "Takk, men beviset mangler fortsatt."
    assert "> Hei Kari" in message.text
    assert (await ticket(runtime, result.ticket)).requester == "kari.nordmann@example.no"


async def test_the_same_message_twice_is_a_duplicate_of_the_first(runtime: Runtime) -> None:
    raw = make_mail()
    first = await ingest_raw(runtime, raw, "test")
    again = await ingest_raw(runtime, raw, "test")
    assert again.status == "duplicate" and again.ticket == first.ticket
    without_id = make_mail(message_id=None, subject="Uten Message-ID")
    assert (await ingest_raw(runtime, without_id, "t")).status == "created"
    assert (await ingest_raw(runtime, without_id, "t")).status == "duplicate"


# A scanned certificate: a message this large keeps its raw bytes in a file.
_LARGE_SCAN = ("kursbevis.pdf", "application/pdf", bytes(range(256)) * 1200, None)


async def test_small_mail_keeps_its_raw_bytes_in_its_row_and_large_mail_in_a_file(
    runtime: Runtime,
) -> None:
    small = make_mail(subject="Kursbevis mangler")
    large = make_mail(
        subject="Skannet kursbevis", sender="ola@example.no", attachments=[_LARGE_SCAN]
    )
    for raw in (small, large):
        assert (await ingest_raw(runtime, raw, "t")).status == "created"
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(InboundMail).order_by(InboundMail.id))).all()
    assert [row.size for row in rows] == [len(small), len(large)]
    in_row, in_file = rows
    assert in_row.raw == small and in_row.storage_path is None
    assert in_file.raw is None and runtime.storage.read(in_file.storage_path) == large
    assert [read_raw(runtime.storage, row) for row in rows] == [small, large]
    root = runtime.storage.root  # type: ignore[attr-defined]
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    scan = content_address("attachments", _LARGE_SCAN[2]).path
    assert on_disk == sorted([in_file.storage_path, scan])  # no file for the small one


async def test_a_raw_file_that_cannot_be_written_commits_nothing_and_asks_for_a_retry(
    runtime: Runtime,
) -> None:
    class FullDisk:
        """File storage whose writes fail, as on a full or read-only disk."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def put(self, area: str, content: bytes) -> Any:
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    healthy, runtime.storage = runtime.storage, FullDisk(runtime.storage)
    raw = make_mail(subject="Kursbevis mangler", attachments=[_LARGE_SCAN])
    assert not kept_in_row(len(raw)), "a large message, kept in a file"
    with pytest.raises(IngestUnavailable, match="storage unavailable"):
        await ingest_raw(runtime, raw, "test")
    async with transaction(runtime.sessions) as session:
        assert (await session.scalars(select(InboundMail))).all() == []
        assert (await session.scalars(select(Ticket))).all() == []
    # The MTA's retry, once the disk has room again, files it once.
    runtime.storage = healthy
    assert (await ingest_raw(runtime, raw, "test")).status == "created"
    assert (await ingest_raw(runtime, raw, "test")).status == "duplicate"


async def test_same_message_id_from_another_sender_is_not_a_duplicate(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<same@x.example>"), "t")
    other = make_mail(message_id="<same@x.example>", sender="ola@example.no")
    second = await ingest_raw(runtime, other, "t")
    assert second.status == "created" and second.ticket != first.ticket


async def test_reply_quoting_an_earlier_message_id_is_appended(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<first@mail.example.no>"), "t")
    reply = make_mail(subject="Re: Spørsmål", in_reply_to="<first@mail.example.no>")
    result = await ingest_raw(runtime, reply, "t")
    assert (result.status, result.ticket) == ("appended", first.ticket)
    assert result.reason.startswith("message-id")


async def test_reply_to_our_signed_message_id_threads_even_without_stored_row(
    runtime: Runtime,
) -> None:
    first = await ingest_raw(runtime, make_mail(), "t")
    ours = make_message_id(runtime.settings.secret_key, "kurs.example", first.ticket)
    result = await ingest_raw(runtime, make_mail(in_reply_to=f"<{ours}>", subject="Re: x"), "t")
    assert (result.status, result.ticket) == ("appended", first.ticket)


async def test_mail_to_the_signed_reply_address_is_appended(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(), "t")
    address = make_reply_address(runtime.settings.secret_key, "support@kurs.example", first.ticket)
    result = await ingest_raw(runtime, make_mail(to=address, subject="Ny tråd"), "t")
    assert (result.status, result.ticket) == ("appended", first.ticket)
    assert result.reason.startswith("reply-address")


async def test_subject_token_threads_only_for_participants(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(cc="Leder <leder@byggmester.no>"), "t")
    token = f"Oppfølging [#{first.ticket}]"
    from_cc = await ingest_raw(runtime, make_mail(sender="leder@byggmester.no", subject=token), "t")
    assert (from_cc.status, from_cc.ticket) == ("appended", first.ticket)
    assert from_cc.reason.startswith("subject-token")

    stranger = await ingest_raw(
        runtime, make_mail(sender="evil@attacker.example", subject=token), "t"
    )
    assert stranger.status == "created" and stranger.ticket != first.ticket
    assert "does not take part" in stranger.reason
    assert len(await messages(runtime, first.ticket)) == 2


async def test_reply_to_a_closed_ticket_opens_a_follow_up(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<c1@mail.example.no>"), "t")
    async with transaction(runtime.sessions) as session:
        old = await session.scalar(select(Ticket).where(Ticket.number == first.ticket))
        old.status = "closed"
    reply = await ingest_raw(runtime, make_mail(in_reply_to="<c1@mail.example.no>"), "t")
    assert reply.status == "created" and reply.ticket != first.ticket
    assert f"#{first.ticket}" in reply.reason and f"#{reply.ticket}" in reply.reason
    assert (await ticket(runtime, reply.ticket)).refers_to == first.ticket
    assert len(await messages(runtime, first.ticket)) == 1


async def test_auto_reply_is_appended_without_reopening(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<s1@mail.example.no>"), "t")
    async with transaction(runtime.sessions) as session:
        solved = await session.scalar(select(Ticket).where(Ticket.number == first.ticket))
        solved.status = "solved"
        before = solved.last_message_at
    auto = make_mail(
        subject="Fraværsmelding: Spørsmål",
        in_reply_to="<s1@mail.example.no>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    result = await ingest_raw(runtime, auto, "t")
    assert result.status == "appended" and "auto-reply" in result.reason
    after = await ticket(runtime, first.ticket)
    assert after.status == "solved" and after.last_message_at == before
    assert (await messages(runtime, first.ticket))[-1].machine == "auto-reply"


async def test_machine_mail_about_nothing_we_know_is_ignored_but_kept(runtime: Runtime) -> None:
    newsletter = make_mail(subject="Nyhetsbrev november", headers={"List-Id": "<news.example>"})
    result = await ingest_raw(runtime, newsletter, "t")
    assert result.status == "ignored" and result.ticket is None and "list" in result.reason
    async with runtime.sessions() as session:
        kept = await session.scalar(select(InboundMail))
        assert kept.status == "ignored" and kept.machine == "list"
        assert read_raw(runtime.storage, kept) == newsletter
        assert await session.scalar(select(Ticket)) is None


async def test_bounce_marks_our_outgoing_mail_bounced(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(), "t")
    ours = make_message_id(runtime.settings.secret_key, "kurs.example", first.ticket)
    async with transaction(runtime.sessions) as session:
        row = await session.scalar(select(Ticket).where(Ticket.number == first.ticket))
        session.add(
            OutboundEmail(
                ticket_id=row.id, recipients=["kari@example.no"], rfc_message_id=ours, status="sent"
            )
        )
    dsn = (
        "From: MAILER-DAEMON@mx.example.no\r\nTo: support@kurs.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.no>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        ' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no"
        "\r\n\r\nFinal-Recipient: rfc822; kari@example.no\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\nFrom: support@kurs.example\r\n"
        f"Message-ID: <{ours}>\r\nSubject: Re: x\r\n\r\n--b--\r\n"
    ).encode()
    result = await ingest_raw(runtime, dsn, "t")
    assert result.status == "appended" and result.ticket == first.ticket
    assert "bounce" in result.reason
    async with runtime.sessions() as session:
        outbound = await session.scalar(
            select(OutboundEmail).where(OutboundEmail.rfc_message_id == ours)
        )
        assert outbound.status == "bounced" and "User unknown" in outbound.last_reply
        assert await is_suppressed(session, "kari@example.no")


async def test_unreadable_mail_is_quarantined_with_the_original_attached(runtime: Runtime) -> None:
    garbage = b"\x00\xff\xfe not a mail at all \x00" * 20
    result = await ingest_raw(runtime, garbage, "t")
    assert result.status == "quarantined" and result.ticket is not None
    held = await ticket(runtime, result.ticket)
    assert held.needs_review
    [message] = await messages(runtime, result.ticket)
    async with runtime.sessions() as session:
        original = await session.scalar(
            select(Attachment).where(Attachment.message_id == message.id)
        )
    assert original.filename == "original.eml"
    assert runtime.storage.read(original.storage_path) == garbage


async def test_oversized_mail_is_quarantined_not_parsed(runtime: Runtime) -> None:
    big = make_mail(attachments=[("stor.pdf", "application/pdf", b"%PDF" * 400_000, None)])
    result = await ingest_raw(runtime, big, "t", max_message_bytes=1_000_000)
    assert result.status == "quarantined" and "over the size limit" in result.reason
    assert (await ticket(runtime, result.ticket)).subject == "Spørsmål om kursbevis"


async def test_dmarc_failure_from_our_mta_blocks_subject_threading_and_learner_link(
    runtime: Runtime,
) -> None:
    runtime.settings = msgspec.structs.replace(runtime.settings, authserv_id="mx.kurs.example")
    await add_learner(runtime)
    first = await ingest_raw(runtime, make_mail(), "t")
    assert (await ticket(runtime, first.ticket)).learner_id is not None
    forged = make_mail(
        subject=f"Re: [#{first.ticket}]",
        headers={
            "Authentication-Results": "mx.kurs.example; dmarc=fail (p=none) header.from=example.no"
        },
    )
    result = await ingest_raw(runtime, forged, "t")
    assert result.status == "created" and result.ticket != first.ticket
    assert "unverified" in result.reason
    spoofed = await ticket(runtime, result.ticket)
    assert spoofed.learner_id is None
    [message] = await messages(runtime, result.ticket)
    assert not message.sender_verified and message.author_kind == "unknown"


async def test_orders_mentioned_are_linked_only_when_they_are_the_learners(
    runtime: Runtime,
) -> None:
    kari = await add_learner(runtime)
    other = await add_learner(runtime, "ola@example.no")
    async with transaction(runtime.sessions) as session:
        when = datetime(2026, 10, 1, tzinfo=UTC)
        for number, owner in (("20261042", kari), ("20269999", other)):
            session.add(
                Order(
                    number=number,
                    learner_id=owner.id,
                    course="HMS",
                    amount_minor=1,
                    currency="NOK",
                    status="paid",
                    purchased_at=when,
                )
            )
    body = "Gjelder ordre 20261042. Og hva med 20269999?"
    result = await ingest_raw(runtime, make_mail(body=body), "t")
    async with runtime.sessions() as session:
        linked = (await session.scalars(select(Order.number).join(TicketOrder))).all()
    assert linked == ["20261042"]
    notes = [m for m in await messages(runtime, result.ticket) if m.direction == "note"]
    assert len(notes) == 1 and "20269999" in notes[0].text and "another learner" in notes[0].text


async def test_inline_image_points_at_our_attachment_url(runtime: Runtime) -> None:
    html = '<p>Se bildet:</p><img src="cid:bilde1@x"><img src="https://tracker.example/p.gif">'
    raw = make_mail(
        html=html,
        attachments=[
            ("skjermbilde.png", "image/png", b"\x89PNG fake", "bilde1@x"),
            ("Kursbevis_Åse_Ødegård.pdf", "application/pdf", b"%PDF-1.4 fake", None),
        ],
    )
    result = await ingest_raw(runtime, raw, "t")
    [message] = await messages(runtime, result.ticket)
    async with runtime.sessions() as session:
        files = (await session.scalars(select(Attachment).order_by(Attachment.id))).all()
    names = {f.filename for f in files}
    assert "Kursbevis_Åse_Ødegård.pdf" in names
    image = next(f for f in files if f.content_id)
    assert f"/api/v1/attachments/{image.id}" in message.html
    assert "tracker.example" not in message.html


async def test_cc_addresses_become_participants_but_ours_do_not(runtime: Runtime) -> None:
    raw = make_mail(
        cc="leder@byggmester.no, support+9.abc@kurs.example, Support <support@kurs.example>"
    )
    result = await ingest_raw(runtime, raw, "t")
    assert result.status == "created"
    assert (await ticket(runtime, result.ticket)).participants == ["leder@byggmester.no"]


async def test_a_new_ticket_is_acknowledged_once_and_machine_mail_never(runtime: Runtime) -> None:
    first = await ingest_raw(runtime, make_mail(message_id="<a1@mail.example.no>"), "t")
    follow = make_mail(subject="Re: Spørsmål", in_reply_to="<a1@mail.example.no>")
    await ingest_raw(runtime, follow, "t")
    await ingest_raw(
        runtime,
        make_mail(sender="ola@example.no", headers={"Auto-Submitted": "auto-generated"}),
        "t",
    )
    assert await write_acknowledgements(runtime) == 1  # the outbox worker writes it
    async with runtime.sessions() as session:
        outgoing = (await session.scalars(select(OutboundEmail))).all()
    [ack] = outgoing
    assert ack.kind == "acknowledgement" and ack.recipients == ["kari.nordmann@example.no"]
    mail = message_from_bytes(ack.raw, policy=policy.default)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert f"[#{first.ticket}]" in mail["Subject"]


async def test_oversized_mail_gets_a_polite_notice(runtime: Runtime) -> None:
    big = make_mail(attachments=[("stor.pdf", "application/pdf", b"%PDF" * 400_000, None)])
    result = await ingest_raw(runtime, big, "t", max_message_bytes=1_000_000)
    async with runtime.sessions() as session:
        [notice] = (await session.scalars(select(OutboundEmail))).all()
    assert notice.recipients == ["kari.nordmann@example.no"]
    assert f"[#{result.ticket}]" in message_from_bytes(notice.raw, policy=policy.default)["Subject"]


async def test_a_sender_flooding_us_is_marked_rate_limited_not_answered(runtime: Runtime) -> None:
    results = [
        await ingest_raw(runtime, make_mail(subject=f"Spørsmål {i}"), "t") for i in range(22)
    ]
    assert [r.status for r in results[:20]] == ["created"] * 20
    assert results[20].status == "ignored" and results[20].reason.startswith("rate-limit")
    assert await write_acknowledgements(runtime) == 1  # the outbox worker decides
    async with runtime.sessions() as session:
        acknowledged = (await session.scalars(select(OutboundEmail))).all()
    assert len(acknowledged) == 1  # once per address per 4 hours, not 20 times
