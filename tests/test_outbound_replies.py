"""Operator replies through the API: stored with their outbox row in one transaction.

`POST /api/v1/tickets/{number}/replies` takes JSON or multipart with files, answers 201
with the message (`status: queued`), and refuses closed tickets (409), empty bodies (422),
oversized files (413) and, unless forced, suppressed recipients (409).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.models import Attachment, AuditEvent, Message, OutboundEmail, SuppressedAddress
from helpdesk.outbound import service as outbound_service
from helpdesk.outbound.suppression import is_suppressed, record_hard_bounce, suppress_address
from tests.factories import T0, add_operator, bearer
from tests.mail_factory import make_mail
from tests.outbound_factory import (
    SUPPORT,
    add_mail_ticket,
    add_operator_row,
    outbound_rows,
    parse,
    reply,
    text_part,
)

NOW = T0 + timedelta(hours=2)
MESSAGE_KEYS = {
    "id",
    "direction",
    "author",
    "created_at",
    "text",
    "reply_text",
    "html",
    "thread_reason",
    "machine",
    "status",
    "attachments",
}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_immediate_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests inspect the outbox as the reply left it (`queued`).

    The API starts delivery right after its commit (in the embedded mode in this very
    process), which would race the assertions; that kick is proven by
    tests/test_mail_round_trip.py and tests/test_outbound_delivery.py.
    """

    async def leave_queued(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr("helpdesk.outbound.api.kick_delivery", leave_queued)


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "ola@kurs.example", "Ola Ågesen", "agent"))


async def count(runtime, model) -> int:
    async with transaction(runtime.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def outbound_messages(runtime) -> list[Message]:
    async with transaction(runtime.sessions) as session:
        query = select(Message).where(Message.direction == "outbound").order_by(Message.id)
        return list(await session.scalars(query))


def replies_url(number: int) -> str:
    return f"/api/v1/tickets/{number}/replies"


async def test_json_reply_is_stored_queued_and_threaded(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime, participants=("per@firma.no",))

    response = await client.post(
        replies_url(ticket.number),
        json={"body": "Hei Kari,\n\nkursbeviset er sendt. Æ Ø Å"},
        headers=agent,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    assert body["status"] == "queued"
    assert body["direction"] == "outbound"
    assert body["author"] == {"kind": "operator", "name": "Ola Ågesen", "email": "ola@kurs.example"}
    assert body["text"] == "Hei Kari,\n\nkursbeviset er sendt. Æ Ø Å"
    assert body["attachments"] == []
    (row,) = await outbound_rows(runtime)
    assert (row.kind, row.status, row.message_id) == ("reply", "queued", body["id"])
    assert row.recipients == ["kari@example.no", "per@firma.no"]
    assert row.next_attempt_at == NOW
    mail = parse(row.raw)
    assert mail["Message-ID"] == f"<{row.rfc_message_id}>"
    assert mail["In-Reply-To"] == "<first.1@mail.example.no>"
    assert "kursbeviset er sendt. Æ Ø Å" in text_part(mail)

    detail = (await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)).json()
    assert detail["status"] == "open"
    assert detail["messages"][-1]["status"] == "queued"
    assert detail["last_message_at"] == "2026-11-21T12:00:00Z"


async def test_multipart_reply_with_a_pdf_attaches_and_stores_it(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    response = await client.post(
        replies_url(ticket.number),
        data={"body": "Her er kursbeviset ditt."},
        files=[("files", ("Kursbevis Åse.pdf", PDF, "application/pdf"))],
        headers=agent,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "queued"
    (attachment,) = body["attachments"]
    assert attachment["filename"] == "Kursbevis Åse.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(PDF)
    download = await client.get(f"/api/v1/attachments/{attachment['id']}", headers=agent)
    assert download.content == PDF
    (row,) = await outbound_rows(runtime)
    mail = parse(row.raw)
    assert mail.get_content_type() == "multipart/mixed"
    (pdf,) = list(mail.iter_attachments())
    assert pdf.get_filename() == "Kursbevis Åse.pdf"
    assert pdf.get_content() == PDF


async def test_multipart_force_flag_and_missing_body(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    missing = await client.post(
        replies_url(ticket.number),
        data={"force": "true"},
        files=[("files", ("a.pdf", PDF, "application/pdf"))],
        headers=agent,
    )
    bad_flag = await client.post(
        replies_url(ticket.number),
        data={"body": "Hei", "force": "kanskje"},
        files=[("files", ("a.pdf", PDF, "application/pdf"))],
        headers=agent,
    )

    assert missing.status_code == 422
    assert missing.json()["fields"] == {"body": "This field is required."}
    assert bad_flag.status_code == 422
    assert set(bad_flag.json()["fields"]) == {"force"}
    assert await count(runtime, OutboundEmail) == 0


async def test_a_failure_after_the_message_rolls_back_message_and_outbox(
    runtime, client, agent, monkeypatch
) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    async def broken_outbox(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(outbound_service, "add_to_outbox", broken_outbox)
    response = await client.post(
        replies_url(ticket.number),
        data={"body": "Svar"},
        files=[("files", ("a.pdf", PDF, "application/pdf"))],
        headers=agent,
    )

    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert await outbound_messages(runtime) == []
    assert await count(runtime, OutboundEmail) == 0
    assert await count(runtime, Attachment) == 0
    detail = (await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)).json()
    assert detail["status"] == "new"


async def test_outbox_row_commits_with_the_message(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(runtime)

    with pytest.raises(RuntimeError):
        async with transaction(runtime.sessions) as session:
            from helpdesk.tickets import service as tickets

            found = await tickets.get_ticket(session, ticket.number)
            await outbound_service.queue_reply(
                session, runtime.settings, runtime.storage, found, operator, "Svar", now=NOW
            )
            assert await session.scalar(select(func.count()).select_from(OutboundEmail)) == 1
            raise RuntimeError("the request failed after the reply was written")

    assert await count(runtime, OutboundEmail) == 0
    assert await outbound_messages(runtime) == []


async def test_reply_to_a_closed_ticket_is_a_conflict(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        from helpdesk.tickets import service as tickets

        (await tickets.get_ticket(session, ticket.number)).status = "closed"

    response = await client.post(replies_url(ticket.number), json={"body": "Hei"}, headers=agent)

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert await count(runtime, OutboundEmail) == 0


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x0b"])
async def test_empty_body_is_rejected(runtime, client, agent, text: str) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    response = await client.post(replies_url(ticket.number), json={"body": text}, headers=agent)

    assert response.status_code == 422
    assert response.json()["fields"] == {"body": "must not be empty"}
    assert await outbound_messages(runtime) == []


@pytest.mark.parametrize(
    ("payload", "status", "fields"),
    [
        ({}, 422, {"body": "This field is required."}),
        ({"body": 5}, 422, {"body": "Expected `str`, got `int`"}),
        ({"body": "x", "cc": "a@b.no"}, 422, {"cc": "Unknown field."}),
        ([], 400, None),
    ],
)
async def test_malformed_json_is_named(runtime, client, agent, payload, status, fields) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    response = await client.post(replies_url(ticket.number), json=payload, headers=agent)

    assert response.status_code == status
    assert response.json().get("fields") == fields


async def test_unknown_ticket_and_missing_token(runtime, client, agent) -> None:
    assert (
        await client.post(replies_url(9999), json={"body": "x"}, headers=agent)
    ).status_code == 404
    ticket, _ = await add_mail_ticket(runtime)
    assert (await client.post(replies_url(ticket.number), json={"body": "x"})).status_code == 401


async def test_a_file_over_ten_megabytes_is_too_large(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    response = await client.post(
        replies_url(ticket.number),
        data={"body": "Vedlagt"},
        files=[("files", ("stor.pdf", b"x" * (10 * MB + 1), "application/pdf"))],
        headers=agent,
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert "stor.pdf" in response.json()["detail"]
    assert await outbound_messages(runtime) == []


async def test_files_over_25_megabytes_together_are_too_large(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    files = [("files", (f"del{n}.pdf", b"x" * (9 * MB), "application/pdf")) for n in range(3)]

    response = await client.post(
        replies_url(ticket.number), data={"body": "Vedlagt"}, files=files, headers=agent
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert await count(runtime, Attachment) == 0


async def test_a_body_far_over_the_limit_is_cut_off_by_the_server(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    response = await client.post(
        replies_url(ticket.number),
        data={"body": "x"},
        files=[("files", ("enorm.bin", b"x" * (28 * MB), "application/octet-stream"))],
        headers=agent,
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_reply_is_audited_without_its_text(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)

    await client.post(replies_url(ticket.number), json={"body": "Hemmelig tekst"}, headers=agent)

    async with transaction(runtime.sessions) as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "reply.queued"))
    assert event is not None
    assert event.target == f"ticket:{ticket.number}"
    assert event.actor.startswith("operator:")
    assert event.details["recipients"] == 1
    assert "Hemmelig" not in str(event.details) and "@" not in str(event.details)


# --- suppression ------------------------------------------------------------------------------


async def test_reply_to_a_suppressed_address_asks_for_confirmation(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        await suppress_address(session, "Kari@Example.no", "550 5.1.1 user unknown", now=T0)

    held = await client.post(replies_url(ticket.number), json={"body": "Hei"}, headers=agent)

    assert held.status_code == 409
    error = held.json()
    assert error["error"] == "conflict"
    assert "force" in error["detail"]
    assert error["suppressed"] == [
        {
            "address": "kari@example.no",
            "reason": "550 5.1.1 user unknown",
            "since": "2026-11-21T10:00:00Z",
        }
    ]
    assert await outbound_messages(runtime) == []

    forced = await client.post(
        replies_url(ticket.number), json={"body": "Hei", "force": True}, headers=agent
    )
    assert forced.status_code == 201
    assert forced.json()["status"] == "queued"


async def test_any_operator_can_look_up_and_lift_a_suppression(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        await suppress_address(session, "kari@example.no", "550 mailbox gone", now=T0)

    shown = await client.get("/api/v1/suppressions/Kari@example.no", headers=agent)
    lifted = await client.delete("/api/v1/suppressions/kari@example.no", headers=agent)
    again = await client.delete("/api/v1/suppressions/kari@example.no", headers=agent)
    after = await client.post(replies_url(ticket.number), json={"body": "Hei"}, headers=agent)

    assert shown.status_code == 200
    assert shown.json()["reason"] == "550 mailbox gone"
    assert lifted.status_code == 204
    assert again.status_code == 404
    assert after.status_code == 201
    async with transaction(runtime.sessions) as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "suppression.lifted")
        )
    assert event is not None and "@" not in str(event.details) + event.target
    assert (await client.delete("/api/v1/suppressions/x@y.no")).status_code == 401


async def test_hard_bounce_marks_the_reply_bounced_and_suppresses_the_recipient(
    runtime, client, agent
) -> None:
    ticket, _ = await add_mail_ticket(runtime, participants=("per@firma.no",))
    await client.post(replies_url(ticket.number), json={"body": "Hei"}, headers=agent)
    (row,) = await outbound_rows(runtime)

    async with transaction(runtime.sessions) as session:
        found = await session.get(OutboundEmail, row.id)
        assert found is not None
        await record_hard_bounce(
            session,
            found,
            "550 5.1.1 <kari@example.no>: Recipient address rejected",
            NOW,
            failed_recipients=["KARI@example.no"],
        )

    detail = (await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)).json()
    assert detail["messages"][-1]["status"] == "bounced"
    (bounced,) = await outbound_rows(runtime)
    assert bounced.last_reply == "550 5.1.1 <kari@example.no>: Recipient address rejected"
    async with transaction(runtime.sessions) as session:
        assert await is_suppressed(session, "kari@example.no")
        assert not await is_suppressed(session, "per@firma.no")
        (entry,) = await session.scalars(select(SuppressedAddress))
    assert entry.outbound_email_id == row.id


async def test_a_bounce_naming_nobody_suppresses_every_recipient(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(runtime, participants=("per@firma.no",))
    queued = await reply(runtime, ticket.number, operator)

    async with transaction(runtime.sessions) as session:
        found = await session.get(OutboundEmail, queued.outbound.id)
        assert found is not None
        await record_hard_bounce(session, found, "", NOW)
        await record_hard_bounce(session, found, "second report", NOW)  # no duplicate rows
        entries = list(await session.scalars(select(SuppressedAddress)))

    assert sorted(e.address for e in entries) == ["kari@example.no", "per@firma.no"]
    assert {e.reason for e in entries} == {"bounced"}


async def test_our_own_addresses_are_never_copied(runtime) -> None:
    operator = await add_operator_row(runtime)
    ticket, _ = await add_mail_ticket(
        runtime,
        participants=(
            SUPPORT,
            "support+1.abcdefabcdef@kurs.example",
            "per@firma.no",
            "x@y.invalid",
        ),
    )

    queued = await reply(runtime, ticket.number, operator)

    assert queued.outbound.recipients == ["kari@example.no", "per@firma.no"]


# --- the learner's answer comes back into the ticket ------------------------------------------


async def test_the_learners_answer_to_our_reply_threads_into_the_same_ticket(
    runtime, client, agent
) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    await client.post(replies_url(ticket.number), json={"body": "Hei Kari"}, headers=agent)
    (row,) = await outbound_rows(runtime)
    ours = parse(row.raw)
    answer = make_mail(
        sender="Kari Nordmann <kari@example.no>",
        to=str(ours["Reply-To"]),
        subject=f"SV: {ours['Subject']}",
        body="Takk, nå fant jeg det!",
        in_reply_to=ours["Message-ID"],
        references=f"{ours['References']} {ours['Message-ID']}",
    )

    result = await ingest_raw(runtime, answer, "test")

    assert (result.status, result.ticket) == ("appended", ticket.number)
    assert result.reason.startswith("message-id")


async def test_our_own_reply_coming_back_is_recognised_as_a_loop(runtime, client, agent) -> None:
    ticket, _ = await add_mail_ticket(runtime)
    await client.post(replies_url(ticket.number), json={"body": "Hei Kari"}, headers=agent)
    (row,) = await outbound_rows(runtime)
    assert row.raw is not None

    result = await ingest_raw(runtime, row.raw, "test")

    assert result.status == "appended"
    assert result.reason.startswith("loop")
    detail = (await client.get(f"/api/v1/tickets/{ticket.number}", headers=agent)).json()
    assert detail["messages"][-1]["machine"] == "loop"
