"""Filing a parsed message into tickets: human mail, machine mail, or quarantine.

The pipeline decides *which* of these applies; a `Filer` does the writing, inside the
pipeline's transaction, and records the outcome on the message's `InboundMail` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.adapters.storage import StoredFile
from helpdesk.bootstrap import Runtime
from helpdesk.inbound.bounces import find_bounced_message_ids
from helpdesk.inbound.linking import link_mentioned_orders, merge_mail_participants
from helpdesk.inbound.outcome import IngestResult
from helpdesk.inbound.parse import ParsedMessage
from helpdesk.inbound.replies import extract_reply
from helpdesk.inbound.rules import Classification
from helpdesk.inbound.sanitise import rewrite_cid_urls
from helpdesk.inbound.threading import ThreadMatch
from helpdesk.models import Attachment, InboundMail, Message, OutboundEmail, Ticket, TicketMerge
from helpdesk.models.rows import insert_later
from helpdesk.outbound.automatic import maybe_acknowledge, queue_notice
from helpdesk.outbound.suppression import record_hard_bounce
from helpdesk.signing import verify_message_id
from helpdesk.tickets.lifecycle import (
    MessageDraft,
    append_message,
    create_ticket,
    open_followup_ticket,
)
from helpdesk.tickets.merge import surviving_ticket

UNKNOWN_SENDER = "unknown-sender@invalid"
# Built once: constructing a statement costs more than running this one.
_TICKET_BY_NUMBER = (
    select(Ticket, col(TicketMerge.target_ticket_id))
    .outerjoin(TicketMerge, col(TicketMerge.source_ticket_id) == col(Ticket.id))
    .where(col(Ticket.number) == bindparam("number"))
)


@dataclass(frozen=True)
class Received:
    """A received message as stored: its `InboundMail` row, less the outcome."""

    stored: StoredFile  # digest and size; the file's path unless the bytes are in `raw`
    raw: bytes | None  # the bytes themselves, when the row keeps them (inbound/raw_mail.py)
    source: str
    received_at: datetime
    rfc_message_id: str | None  # as the row keeps them: capped to the column sizes
    sender: str | None


class Filer:
    """Writes one inbound message into the database; one instance per message."""

    def __init__(
        self,
        session: AsyncSession,
        runtime: Runtime,
        received: Received,
        parsed: ParsedMessage,
        *,
        learner_id: int | None = None,
        named_orders: list[str] | None = None,
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.received = received
        self.stored = received.stored
        self.parsed = parsed
        self.now = received.received_at
        self.machine: str | None = None  # the machine-mail rule that matched, if any
        # The learner whose address sent this (looked up with the duplicate check).
        self.learner_id = learner_id
        # Order numbers the message names, when the look-up found that one is an order.
        self.named_orders = named_orders or []

    # --- the three outcomes -------------------------------------------------------------

    async def quarantine(self, why: str, *, exceeded_limit: int | None = None) -> IngestResult:
        """A new ticket flagged for review, with the raw message attached.

        Mail over the size limit also gets the sender a polite notice (when the sender is
        a person we may write to; `queue_notice` applies the automatic-mail rules).
        """
        assert self.received.raw is None, "a quarantined original is kept as a file"
        text = (
            f"This message could not be taken in automatically ({why}). "
            "The original message is attached as original.eml."
        )
        ticket, message = await create_ticket(
            self.session,
            subject=self.parsed.subject or "(unreadable message)",
            channel="email",
            requester=self.parsed.from_address or UNKNOWN_SENDER,
            requester_name=self.parsed.from_name,
            first_message=self._draft(text, f"new; quarantined: {why}", "unknown", verified=False),
            now=self.now,
            needs_review=True,
            link_learner=False,
        )
        assert message.id is not None, "create_ticket flushes the first message"
        self.session.add(
            Attachment(
                message_id=message.id,
                filename="original.eml",
                content_type="message/rfc822",
                size=self.stored.size,
                sha256=self.stored.sha256,
                storage_path=self.stored.path,
            )
        )
        if exceeded_limit is not None:
            await queue_notice(
                self.session,
                self.runtime.settings,
                ticket,
                message,
                self.now,
                size_bytes=self.stored.size,
                limit_bytes=exceeded_limit,
            )
        return await self._record("quarantined", ticket, message, f"quarantined: {why}")

    async def file_machine_mail(
        self, machine: Classification, match: ThreadMatch | None
    ) -> IngestResult:
        """Stored and marked; appended to a known ticket without reopening it, else ignored."""
        self.machine = machine.kind
        number, how = (
            (match.ticket_number, f"{match.rule}; {match.detail}") if match else (None, "")
        )
        if machine.kind == "bounce":
            bounced = await self._record_bounce()
            if number is None and bounced is not None:
                number, how = bounced, f"message-id; reports on our mail of #{bounced}"
        ticket = await self._ticket(number) if number is not None else None
        if ticket is None:
            return await self._record("ignored", None, None, machine.reason)
        draft = self._draft(self.parsed.text, how, "unknown", verified=True, machine=machine.kind)
        message = await append_message(self.session, ticket, draft, now=self.now)
        await self._store_attachments(message)
        return await self._record("appended", ticket, message, f"{machine.reason}; {how}")

    async def file_human_mail(
        self, match: ThreadMatch | None, notes: list[str], verified: bool, trust_reason: str
    ) -> IngestResult:
        """Append to the matched ticket, or open a new (or follow-up) ticket."""
        if not verified:
            notes = [*notes, f"sender unverified: {trust_reason}"]
        ticket = await self._ticket(match.ticket_number) if match else None
        learner_id = self.learner_id if verified else None
        author = "learner" if learner_id is not None else "unknown"
        if match is not None and ticket is not None and ticket.status != "closed":
            reason = f"{match.rule}; {match.detail}"
            draft = self._draft(self.parsed.text, reason, author, verified)
            message = await append_message(self.session, ticket, draft, now=self.now)
            status = "appended"
        elif match is not None:
            why = "closed" if ticket is not None else "no longer kept"
            draft = self._draft(self.parsed.text, match.rule, author, verified)
            ticket, message = await open_followup_ticket(
                self.session,
                refers_to=match.ticket_number,
                matched_by=match.rule,
                first_message=draft,
                subject=self.parsed.subject,
                channel="email",
                requester=self.parsed.from_address or UNKNOWN_SENDER,
                requester_name=self.parsed.from_name,
                now=self.now,
                why=why,
                link_learner=verified,
            )
            reason, status = message.thread_reason or match.rule, "created"
        else:
            reason = "; ".join(["new", *notes])
            ticket, message = await create_ticket(
                self.session,
                subject=self.parsed.subject,
                channel="email",
                requester=self.parsed.from_address or UNKNOWN_SENDER,
                requester_name=self.parsed.from_name,
                first_message=self._draft(self.parsed.text, reason, author, verified),
                now=self.now,
                learner_id=learner_id,
                link_learner=False,
            )
            status = "created"
        await self._store_attachments(message)
        settings = self.runtime.settings
        merge_mail_participants(ticket, self.parsed, settings.support_address)
        await link_mentioned_orders(self.session, ticket, self.named_orders, now=self.now)
        if status == "created":
            await maybe_acknowledge(
                self.session,
                settings,
                ticket,
                message,
                self.now,
                enabled=settings.acknowledge_new_tickets,
            )
        return await self._record(status, ticket, message, reason)

    # --- pieces -------------------------------------------------------------------------

    def _draft(
        self, text: str, reason: str, author: str, verified: bool, machine: str | None = None
    ) -> MessageDraft:
        parsed = self.parsed
        return MessageDraft(
            direction="inbound",
            text=text,
            reply_text=extract_reply(text) if machine is None else text,
            html=parsed.html,
            author_kind=author,
            author_name=parsed.from_name,
            author_email=parsed.from_address,
            machine=machine,
            thread_reason=reason[:500],
            rfc_message_id=self.received.rfc_message_id,
            sender=self.received.sender,
            in_reply_to=" ".join(parsed.in_reply_to) or None,
            references=" ".join(parsed.references[-20:]) or None,
            sender_verified=verified,
        )

    async def _ticket(self, number: int) -> Ticket | None:
        """The ticket with this number, or the one it was merged into."""
        # One query for the usual case: the ticket, and whether it was merged at all.
        row = (await self.session.execute(_TICKET_BY_NUMBER, {"number": number})).first()
        if row is None:
            return None
        ticket, merged_into = row
        return ticket if merged_into is None else await surviving_ticket(self.session, ticket)

    async def _store_attachments(self, message: Message) -> None:
        """Store each attachment by SHA-256 and point inline `cid:` images at our URLs."""
        assert message.id is not None, "append_message flushes the message"
        cid_urls: dict[str, str] = {}
        for part in self.parsed.attachments:
            if part.omitted:
                continue
            stored = self.runtime.storage.put("attachments", part.content)
            attachment = Attachment(
                message_id=message.id,
                filename=part.filename,
                content_type=part.content_type,
                size=stored.size,
                sha256=stored.sha256,
                storage_path=stored.path,
                content_id=part.content_id,
                inline=part.inline,
            )
            self.session.add(attachment)
            if part.content_id:
                await self.session.flush()  # the URL needs the attachment's id
                cid_urls[part.content_id] = f"/api/v1/attachments/{attachment.id}"
        if message.html and cid_urls:
            message.html = rewrite_cid_urls(message.html, cid_urls)

    async def _record_bounce(self) -> int | None:
        """Mark the outgoing mail a bounce reports on; return its ticket number if ours."""
        report = find_bounced_message_ids(self.parsed.email)
        if not report.message_ids:
            return None
        if report.permanent:
            bounced = await self.session.scalars(
                select(OutboundEmail).where(
                    col(OutboundEmail.rfc_message_id).in_(report.message_ids)
                )
            )
            for outbound in bounced:
                await record_hard_bounce(
                    self.session,
                    outbound,
                    report.diagnostic or "bounced",
                    self.now,
                    failed_recipients=report.failed_recipients,
                )
        secret = self.runtime.settings.secret_key
        return next(
            (n for i in report.message_ids if (n := verify_message_id(secret, i)) is not None),
            None,
        )

    async def _record(
        self, status: str, ticket: Ticket | None, message: Message | None, reason: str
    ) -> IngestResult:
        """Write the message's `InboundMail` row with its outcome (at the commit)."""
        received = self.received
        row = {
            "sha256": self.stored.sha256,
            "storage_path": None if received.raw is not None else self.stored.path,
            "raw": received.raw,
            "size": self.stored.size,
            "source": received.source,
            "received_at": received.received_at,
            "rfc_message_id": received.rfc_message_id,
            "sender": received.sender,
            "status": status,
            "reason": reason[:1000],
            "machine": self.machine,
            "ticket_id": ticket.id if ticket else None,
            "message_id": message.id if message else None,
        }
        await insert_later(self.session, InboundMail, row)
        return IngestResult(status, ticket.number if ticket else None, reason)
