"""Ticket lifecycle: creating tickets, appending messages, and the status rules of DESIGN §7.

Only human messages (from the learner or an operator) move `last_message_at`; machine
mail never reopens a ticket; a closed ticket stays closed and a new message about it opens
a follow-up ticket that refers to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict
from helpdesk.live import announce_ticket_change, announce_ticket_message
from helpdesk.models import Learner, Message, Ticket
from helpdesk.models.messages import AUTHOR_KINDS, DIRECTIONS, MACHINE_MARKS
from helpdesk.models.rows import insert_instance
from helpdesk.models.tickets import CHANNELS
from helpdesk.operators.notifications import notify_learner_reply
from helpdesk.privacy.detection import suggest_privacy_request
from helpdesk.tickets import service_levels
from helpdesk.tickets.numbers import allocate_ticket_number, insert_ticket, issued_on_insert

THREAD_RULES = ("message-id", "reply-address", "subject-token", "new")

# Which status may follow which; anything else is a 409. Closed is final: a new message
# about a closed ticket opens a follow-up ticket instead.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "solved", "closed"}),
    "open": frozenset({"pending", "solved", "closed"}),
    "pending": frozenset({"open", "solved", "closed"}),
    "solved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}

_SUBJECT_MAX = 998


@dataclass(frozen=True, kw_only=True)
class MessageDraft:
    """The fields of a message to add; `reply_text` defaults to `text`."""

    direction: str
    text: str
    author_kind: str = "unknown"
    author_name: str | None = None
    author_email: str | None = None
    operator_id: int | None = None
    reply_text: str | None = None
    html: str | None = None
    machine: str | None = None
    thread_reason: str | None = None
    rfc_message_id: str | None = None
    sender: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    # False when the From address failed DMARC at our MTA (DESIGN §4 HELPDESK_AUTHSERV_ID).
    sender_verified: bool = True

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        if self.author_kind not in AUTHOR_KINDS:
            raise ValueError(f"author_kind must be one of {AUTHOR_KINDS}")
        if self.machine is not None and self.machine not in MACHINE_MARKS:
            raise ValueError(f"machine must be None or one of {MACHINE_MARKS}")
        if self.thread_reason is not None:
            rule = self.thread_reason.split(";", 1)[0].strip()
            if rule not in THREAD_RULES:
                raise ValueError(f"thread_reason must start with one of {THREAD_RULES}")

    @property
    def is_human(self) -> bool:
        """DESIGN §7: a learner's (or unknown sender's) real mail, or an operator's reply."""
        if self.machine is not None:
            return False
        if self.direction == "inbound":
            return self.author_kind in ("learner", "unknown")
        return self.direction == "outbound" and self.author_kind == "operator"

    @property
    def is_human_inbound(self) -> bool:
        """Real mail from the requester's side: the kind that reopens a ticket."""
        return self.is_human and self.direction == "inbound"


def check_transition(ticket: Ticket, new_status: str) -> None:
    """Raise Conflict (409) unless the status table allows `ticket.status → new_status`."""
    if new_status not in ALLOWED_TRANSITIONS:
        raise ValueError(f"unknown status {new_status!r}")
    if new_status not in ALLOWED_TRANSITIONS[ticket.status]:
        raise Conflict(f"A {ticket.status} ticket cannot become {new_status}.")


async def change_status(
    session: AsyncSession,
    ticket: Ticket,
    new_status: str,
    *,
    actor: str,
    now: datetime,
    cause: str | None = None,
) -> bool:
    """Move the ticket to `new_status` if allowed (same status is a no-op); audited."""
    if new_status == ticket.status:
        return False
    check_transition(ticket, new_status)
    await move_status(session, ticket, new_status, actor=actor, now=now, cause=cause)
    return True


async def move_status(
    session: AsyncSession,
    ticket: Ticket,
    new_status: str,
    *,
    actor: str,
    now: datetime,
    cause: str | None = None,
) -> None:
    """Set the status without consulting `ALLOWED_TRANSITIONS`: service levels, audit event
    and live announcement as for any change. Use `change_status`; this is for the one
    sanctioned exception (undoing a spam closure, `helpdesk.tickets.spam`)."""
    old_status, ticket.status, ticket.updated_at = ticket.status, new_status, now
    service_levels.record_status(ticket, now)
    details = {"from": old_status, "to": new_status}
    if cause:
        details["cause"] = cause
    await record_event(session, actor, "ticket.status_changed", target(ticket), **details)
    announce_ticket_change(session, ticket)


def target(ticket: Ticket) -> str:
    """The audit target of a ticket: its public number."""
    return f"ticket:{ticket.number}"


async def create_ticket(
    session: AsyncSession,
    *,
    subject: str,
    channel: str,
    requester: str,
    first_message: MessageDraft,
    now: datetime,
    requester_name: str | None = None,
    learner_id: int | None = None,
    participants: Iterable[str] = (),
    refers_to: int | None = None,
    needs_review: bool = False,
    link_learner: bool = True,
    actor: str = "system",
) -> tuple[Ticket, Message]:
    """Open a ticket with its first message; links the learner by the requester's address.

    `link_learner=False` skips that link for a sender whose address is not trusted (a
    forged From must not put a learner's orders and enrolments next to the stranger's mail).
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}")
    if issued_on_insert(session):
        number = 0  # issued by the ticket's own INSERT
    else:
        # Allocated first: on SQLite its INSERT takes the write lock before any read.
        number = await allocate_ticket_number(session, now)
    address = requester.strip().lower()
    if learner_id is None and link_learner:
        learner_id = await find_learner_id(session, address)
    ticket = Ticket(
        number=number,
        subject=clean_subject(subject),
        channel=channel,
        learner_id=learner_id,
        requester=address,
        requester_name=requester_name,
        participants=merge_participants([], participants, requester=address),
        needs_review=needs_review,
        refers_to=refers_to,
        created_at=now,
        updated_at=now,
        # Non-null for retention even when the first message is machine mail.
        last_message_at=now,
    )
    service_levels.set_due_times(ticket, service_levels.policy_of(session))
    await insert_ticket(session, ticket, now)
    await record_event(
        session, actor, "ticket.created", target(ticket), channel=channel, refers_to=refers_to
    )
    message = await append_message(session, ticket, first_message, now=now, actor=actor)
    return ticket, message


async def append_message(
    session: AsyncSession,
    ticket: Ticket,
    draft: MessageDraft,
    *,
    now: datetime,
    actor: str = "system",
    status_after: str | None = None,
    participants: Iterable[str] = (),
) -> Message:
    """Add a message and apply DESIGN §7: last-message time, reopening, closed stays closed.

    `status_after` lets an operator reply set pending (or solved) instead of the default
    new → open. `participants` are To/Cc addresses of inbound mail (ours already removed)
    to add to the ticket's participants. A human message to a closed ticket is a Conflict:
    use `open_followup_ticket`.
    """
    if ticket.status == "closed" and draft.is_human:
        raise Conflict(f"Ticket #{ticket.number} is closed; a new message opens a follow-up.")
    assert ticket.id is not None, "append_message needs a flushed ticket"
    message = Message(
        ticket_id=ticket.id,
        direction=draft.direction,
        author_kind=draft.author_kind,
        author_name=draft.author_name,
        author_email=draft.author_email,
        operator_id=draft.operator_id,
        text=draft.text,
        reply_text=draft.text if draft.reply_text is None else draft.reply_text,
        html=draft.html,
        machine=draft.machine,
        thread_reason=draft.thread_reason,
        rfc_message_id=draft.rfc_message_id,
        sender=draft.sender.lower() if draft.sender else None,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        sender_verified=draft.sender_verified,
        created_at=now,
    )
    await insert_instance(session, message)
    assert message.id is not None
    announce_ticket_message(session, ticket, message.id)
    await record_event(
        session,
        actor,
        "message.added",
        target(ticket),
        message=message.id,
        direction=draft.direction,
        author_kind=draft.author_kind,
        machine=draft.machine,
    )
    if draft.is_human:
        ticket.last_message_at = max(ticket.last_message_at, now)
        ticket.updated_at = now
        if draft.direction == "outbound":
            service_levels.record_first_response(ticket, now)
    if draft.is_human_inbound and ticket.assignee_id is not None:
        await notify_learner_reply(session, ticket, message, now=now)
    await suggest_privacy_request(session, ticket, message, now=now)  # "innsyn", "GDPR"…
    if participants:
        # A new list, so the JSON column is seen as changed.
        ticket.participants = merge_participants(
            ticket.participants, participants, requester=ticket.requester
        )
    await _apply_status_rules(session, ticket, draft, now=now, actor=actor, chosen=status_after)
    return message


async def _apply_status_rules(
    session: AsyncSession,
    ticket: Ticket,
    draft: MessageDraft,
    *,
    now: datetime,
    actor: str,
    chosen: str | None,
) -> None:
    if draft.is_human_inbound and ticket.status in ("pending", "solved"):
        await change_status(session, ticket, "open", actor=actor, now=now, cause="inbound_message")
    elif draft.is_human and draft.direction == "outbound":
        wanted = chosen or ("open" if ticket.status == "new" else ticket.status)
        await change_status(session, ticket, wanted, actor=actor, now=now, cause="operator_reply")


async def open_followup_ticket(
    session: AsyncSession,
    *,
    refers_to: int,
    matched_by: str,
    first_message: MessageDraft,
    subject: str,
    channel: str,
    requester: str,
    now: datetime,
    requester_name: str | None = None,
    participants: Iterable[str] = (),
    why: str = "closed",
    link_learner: bool = True,
    actor: str = "system",
) -> tuple[Ticket, Message]:
    """A message matched closed (or expired) ticket `refers_to`: open a new ticket about it.

    Nothing of the old ticket is restored; the new message's `thread_reason` names both,
    e.g. `message-id; #1042 is closed, follow-up #1107`.
    """
    if matched_by not in THREAD_RULES:
        raise ValueError(f"matched_by must be one of {THREAD_RULES}")
    ticket, message = await create_ticket(
        session,
        subject=subject,
        channel=channel,
        requester=requester,
        requester_name=requester_name,
        first_message=first_message,
        now=now,
        participants=participants,
        refers_to=refers_to,
        link_learner=link_learner,
        actor=actor,
    )
    message.thread_reason = f"{matched_by}; #{refers_to} is {why}, follow-up #{ticket.number}"
    return ticket, message


async def find_learner_id(session: AsyncSession, address: str) -> int | None:
    """The learner whose (case-insensitive) address this is, if any."""
    result = await session.execute(
        select(col(Learner.id)).where(col(Learner.email_key) == address.strip().lower())
    )
    return result.scalar_one_or_none()


def clean_subject(subject: str) -> str:
    """One line, trimmed, never empty: subjects end up in outgoing mail headers."""
    line = " ".join(subject.split())
    return line[:_SUBJECT_MAX] or "(no subject)"


def merge_participants(current: Sequence[str], new: Iterable[str], *, requester: str) -> list[str]:
    """Participants besides the requester, lower-cased, first-seen order, no duplicates."""
    merged = list(current)
    for address in new:
        key = address.strip().lower()
        if key and key != requester and key not in merged:
            merged.append(key)
    return merged
