"""Factories for outgoing-mail tests: tickets with real mail threading, operators, parsing."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import select

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.models import Learner, Message, Operator, OutboundEmail, Ticket
from helpdesk.operators import service as operators
from helpdesk.outbound import service as outbound
from helpdesk.tickets import service as tickets
from tests.factories import T0, learner_mail

SUPPORT = "support@kurs.example"


async def add_operator_row(
    runtime: Runtime, email: str = "ola@kurs.example", name: str = "Ola Ågesen"
) -> Operator:
    async with transaction(runtime.sessions) as session:
        return await operators.create_operator(session, email, name, "agent", None)


async def add_mail_ticket(
    runtime: Runtime,
    *,
    requester: str = "kari@example.no",
    name: str = "Kari Nordmann",
    subject: str = "Spørsmål om kursbevis",
    text: str = "Hei!\n\nJeg har ikke fått kursbeviset mitt.",
    message_id: str | None = "first.1@mail.example.no",
    references: str | None = None,
    participants: tuple[str, ...] = (),
    locale: str | None = None,
    machine: str | None = None,
    verified: bool = True,
    now: datetime = T0,
) -> tuple[Ticket, Message]:
    """A ticket opened by a learner's mail with a Message-ID, optionally a linked learner."""
    async with transaction(runtime.sessions) as session:
        if locale is not None:
            session.add(
                Learner(
                    external_id=f"L-{requester}",
                    email=requester,
                    email_key=requester,
                    name=name,
                    locale=locale,
                )
            )
            await session.flush()
        return await tickets.create_ticket(
            session,
            subject=subject,
            channel="email",
            requester=requester,
            requester_name=name,
            participants=participants,
            first_message=learner_mail(
                text,
                author_email=requester,
                author_name=name,
                rfc_message_id=message_id,
                sender=requester,
                references=references,
                machine=machine,
                sender_verified=verified,
                author_kind="learner" if locale else "unknown",
            ),
            now=now,
        )


async def add_learner_mail(
    runtime: Runtime, number: int, text: str, message_id: str, now: datetime, **fields: object
) -> Message:
    """A later inbound message in the ticket (a reply from the learner)."""
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        draft = learner_mail(
            text,
            author_email=ticket.requester,
            rfc_message_id=message_id,
            sender=ticket.requester,
            thread_reason="message-id",
            **fields,
        )
        return await tickets.append_message(session, ticket, draft, now=now)


async def reply(
    runtime: Runtime,
    number: int,
    operator: Operator,
    body: str = "Hei Kari,\n\nher er kursbeviset ditt: æøå ÆØÅ.\n\nHilsen Ola",
    now: datetime = T0,
    **options: object,
) -> outbound.QueuedReply:
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        return await outbound.queue_reply(
            session,
            runtime.settings,
            runtime.storage,
            ticket,
            operator,
            body,
            now=now,
            **options,  # type: ignore[arg-type]
        )


async def outbound_rows(runtime: Runtime) -> list[OutboundEmail]:
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))


def parse(raw: bytes | None) -> EmailMessage:
    assert raw is not None
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_part(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def html_part(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")
