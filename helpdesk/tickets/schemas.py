"""The operator API's JSON shapes (DESIGN §8): tickets, messages, lists and request bodies.

Times are timezone-aware UTC datetimes, which msgspec writes as RFC 3339 with `Z`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from helpdesk.learners.schemas import LearnerResource

TicketStatus = Literal["new", "open", "pending", "solved", "closed"]
Channel = Literal["email", "widget", "form"]
Priority = Literal["low", "normal", "high", "urgent"]
Direction = Literal["inbound", "outbound", "note"]
AuthorKind = Literal["learner", "operator", "system", "unknown"]
MachineMark = Literal["auto-reply", "bounce", "list", "loop", "rate-limit"]
DeliveryStatus = Literal["queued", "sent", "retrying", "failed", "bounced"]


# The learner block of a ticket is the stored learner resource of the sync API (DESIGN §8).
LearnerOut = LearnerResource


class TicketOut(Struct):
    """A ticket as list item; the detail adds its messages and context."""

    number: int
    subject: str
    status: TicketStatus
    channel: Channel
    priority: Priority
    assignee: str | None
    tags: list[str]
    needs_review: bool
    requester: str
    learner: LearnerOut | None
    created_at: datetime
    last_message_at: datetime
    legal_hold_until: date | None


class AuthorOut(Struct):
    kind: AuthorKind
    name: str | None
    email: str | None


class AttachmentOut(Struct):
    id: int
    filename: str
    content_type: str
    size: int


class MessageOut(Struct):
    """A message; `status` is the delivery status of outbound mail, else null."""

    id: int
    direction: Direction
    author: AuthorOut
    created_at: datetime
    text: str
    reply_text: str
    html: str | None
    thread_reason: str | None
    machine: MachineMark | None
    status: DeliveryStatus | None
    attachments: list[AttachmentOut]


class EnrolmentOut(Struct):
    course: str
    progress_percent: int
    completed_at: datetime | None
    certificate_number: str | None


class OrderOut(Struct):
    """An order shown with a ticket; `linked` means the ticket is explicitly about it."""

    number: str
    course: str | None
    amount_minor: int
    currency: str
    status: str
    purchased_at: datetime
    buyer_org_number: str | None
    linked: bool


class PrivacyRequestOut(Struct):
    id: int
    ticket: int
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    extended_until: datetime | None
    verified_at: datetime | None
    completed_at: datetime | None
    outcome: str | None


class TicketDetailOut(TicketOut):
    messages: list[MessageOut]
    enrolments: list[EnrolmentOut]
    orders: list[OrderOut]
    privacy_request: PrivacyRequestOut | None


class SearchMatchOut(Struct):
    """Why a ticket is a search result: its rank (higher is better) and the matched text.

    `highlights` are [start, end) offsets of the matched words in `snippet`; the snippet
    is null when only the subject, an address or the number matched.
    """

    rank: float
    snippet: str | None
    highlights: list[tuple[int, int]]


class TicketListItemOut(TicketOut):
    """A list item; `search` is there only on the results of a search (`q`)."""

    search: SearchMatchOut | UnsetType = UNSET


class TicketListOut(Struct):
    items: list[TicketListItemOut]
    next_cursor: str | None


class TicketPatch(Struct, forbid_unknown_fields=True):
    """PATCH body: a missing field stays as it is; `"assignee": null` unassigns."""

    status: TicketStatus | UnsetType = UNSET
    assignee: str | None | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET


class NoteIn(Struct, forbid_unknown_fields=True):
    body: Annotated[str, Meta(min_length=1, max_length=100_000)]


class LegalHoldIn(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    until: date
