"""What a learner's widget shows: the conversation's visible messages with their files.

Read on every live-update nudge of every open widget (helpdesk.widget.events) and by
`GET …/messages`, so it is one prebuilt statement — a page of the conversation's
learner-visible messages joined to their files — turned straight into the API's shapes,
without loading ORM objects or building the query again for each read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from helpdesk.models import Attachment, Message, WidgetConversation
from helpdesk.widget.schemas import WidgetAttachmentOut, WidgetMessageOut, widget_message
from helpdesk.widget.service import learner_visible

PAGE = 500

_PAGE_OF_MESSAGES = (
    select(col(Message.id))
    .where(
        col(Message.ticket_id) == bindparam("ticket_id"),
        col(Message.id) > bindparam("after"),
        learner_visible(),
    )
    .order_by(col(Message.id))
    .limit(PAGE)
)

_FEED: Select[*tuple[Any, ...]] = (
    select(
        col(Message.id),
        col(Message.direction),
        col(Message.author_name),
        col(Message.created_at),
        col(Message.text),
        col(Message.reply_text),
        col(Attachment.id).label("file_id"),
        col(Attachment.filename),
        col(Attachment.content_type),
        col(Attachment.size),
    )
    .outerjoin(
        Attachment,
        and_(col(Attachment.message_id) == col(Message.id), col(Attachment.inline).is_(False)),
    )
    .where(col(Message.id).in_(_PAGE_OF_MESSAGES))
    .order_by(col(Message.id), col(Attachment.id))
)

_TICKET_OF_CONVERSATION = select(col(WidgetConversation.ticket_id)).where(
    col(WidgetConversation.id) == bindparam("conversation_id")
)


async def learner_feed(
    connection: AsyncConnection, ticket_id: int, *, after: int | None = None
) -> list[WidgetMessageOut]:
    """The visible messages newer than `after` (all when None), oldest first, up to PAGE."""
    rows = await connection.execute(_FEED, {"ticket_id": ticket_id, "after": after or 0})
    feed: list[WidgetMessageOut] = []
    for row in rows:
        if not feed or feed[-1].id != row.id:
            feed.append(
                widget_message(
                    row.id,
                    row.direction,
                    row.author_name,
                    row.created_at,
                    row.text,
                    row.reply_text,
                    [],
                )
            )
        if row.file_id is not None:
            feed[-1].attachments.append(
                WidgetAttachmentOut(
                    id=row.file_id,
                    filename=row.filename,
                    content_type=row.content_type,
                    size=row.size,
                )
            )
    return feed


async def conversation_ticket(connection: AsyncConnection, conversation_id: int) -> int | None:
    """The ticket a conversation is on now (None once it is deleted)."""
    ticket_id: int | None = (
        await connection.execute(_TICKET_OF_CONVERSATION, {"conversation_id": conversation_id})
    ).scalar()
    return ticket_id
