"""Turn ticket rows into the JSON resources of DESIGN §8 (shared by API and inbox)."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from helpdesk.models import Attachment, Enrolment, Learner, Message
from helpdesk.tickets.queries import MessageRow, OrderRow, TicketDetail, TicketPage, TicketRow
from helpdesk.tickets.schemas import (
    AttachmentOut,
    AuthorOut,
    EnrolmentOut,
    LearnerOut,
    MessageOut,
    OrderOut,
    SearchMatchOut,
    TicketDetailOut,
    TicketListItemOut,
    TicketListOut,
    TicketOut,
)


def learner_out(learner: Learner | None) -> LearnerOut | None:
    """The learner block of a ticket (DESIGN §8)."""
    return None if learner is None else LearnerOut.from_model(learner)


def _ticket_fields(row: TicketRow) -> dict[str, object]:
    ticket = row.ticket
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status,
        "channel": ticket.channel,
        "priority": ticket.priority,
        "assignee": row.assignee_email,
        "tags": list(ticket.tags),
        "needs_review": ticket.needs_review,
        "requester": ticket.requester,
        "learner": learner_out(row.learner),
        "created_at": ticket.created_at,
        "last_message_at": ticket.last_message_at,
        "legal_hold_until": ticket.legal_hold_until,
    }


def ticket_out(row: TicketRow) -> TicketOut:
    """A ticket as list item (and PATCH/legal-hold answer)."""
    return TicketOut(**_ticket_fields(row))  # type: ignore[arg-type]


def ticket_list_out(page: TicketPage) -> TicketListOut:
    """One page of the ticket list with the cursor of the next (search results: why)."""
    items = [
        TicketListItemOut(**_ticket_fields(row), search=_search_match(row))  # type: ignore[arg-type]
        for row in page.items
    ]
    return TicketListOut(items=items, next_cursor=page.next_cursor)


def _search_match(row: TicketRow) -> SearchMatchOut | UnsetType:
    if row.rank is None:
        return UNSET
    snippet = row.snippet
    return SearchMatchOut(
        rank=row.rank,
        snippet=snippet.text if snippet else None,
        highlights=snippet.highlights() if snippet else [],
    )


def message_out(row: MessageRow) -> MessageOut:
    """A message; `status` is the delivery status of outbound mail, null otherwise."""
    message: Message = row.message
    assert message.id is not None
    return MessageOut(
        id=message.id,
        direction=message.direction,  # type: ignore[arg-type]
        author=AuthorOut(
            kind=message.author_kind,  # type: ignore[arg-type]
            name=message.author_name,
            email=message.author_email,
        ),
        created_at=message.created_at,
        text=message.text,
        reply_text=message.reply_text,
        html=message.html,
        thread_reason=message.thread_reason,
        machine=message.machine,  # type: ignore[arg-type]
        status=row.delivery_status if message.direction == "outbound" else None,  # type: ignore[arg-type]
        attachments=[attachment_out(a) for a in row.attachments],
    )


def attachment_out(attachment: Attachment) -> AttachmentOut:
    """An attachment's metadata; the content is served by the attachments API."""
    assert attachment.id is not None
    return AttachmentOut(
        id=attachment.id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
    )


def enrolment_out(enrolment: Enrolment) -> EnrolmentOut:
    """A course enrolment of the ticket's learner."""
    return EnrolmentOut(
        course=enrolment.course,
        progress_percent=enrolment.progress_percent,
        completed_at=enrolment.completed_at,
        certificate_number=enrolment.certificate_number,
    )


def order_out(row: OrderRow) -> OrderOut:
    """An order shown with a ticket; `linked` when the ticket is explicitly about it."""
    order = row.order
    return OrderOut(
        number=order.number,
        course=order.course,
        amount_minor=order.amount_minor,
        currency=order.currency,
        status=order.status,
        purchased_at=order.purchased_at,
        buyer_org_number=order.buyer_org_number,
        linked=row.linked,
    )


def ticket_detail_out(detail: TicketDetail) -> TicketDetailOut:
    """The ticket with messages, enrolments, orders and privacy request."""
    return TicketDetailOut(
        **_ticket_fields(detail.row),  # type: ignore[arg-type]
        messages=[message_out(m) for m in detail.messages],
        enrolments=[enrolment_out(e) for e in detail.enrolments],
        orders=[order_out(o) for o in detail.orders],
        privacy_request=detail.privacy_request,
    )
