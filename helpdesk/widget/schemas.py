"""JSON shapes of the widget API (DESIGN §6): conversations, messages, verification."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from msgspec import Struct

from helpdesk.models import Attachment, Message, Ticket, WidgetConversation


class StartConversationIn(Struct):
    name: str
    email: str
    message: str
    identity_token: str | None = None
    # Honeypot: hidden from people, filled in by form-stuffing robots. Must stay empty.
    website: str = ""


class PostMessageIn(Struct):
    body: str
    website: str = ""


class DisplayedIn(Struct):
    """The newest message the widget has shown the learner."""

    message: int


class SendCodeIn(Struct):
    locale: str | None = None


class ConfirmCodeIn(Struct):
    code: str


class IdentityIn(Struct):
    identity_token: str


class WidgetAuthorOut(Struct):
    kind: Literal["learner", "operator"]
    name: str | None


class WidgetAttachmentOut(Struct):
    id: int
    filename: str
    content_type: str
    size: int


class WidgetMessageOut(Struct):
    """A chat bubble: the learner's own message or an operator's reply."""

    id: int
    direction: Literal["inbound", "outbound"]
    author: WidgetAuthorOut
    created_at: datetime
    text: str
    attachments: list[WidgetAttachmentOut] = []


class ConversationOut(Struct):
    id: str
    ticket: int
    status: str
    name: str
    email: str
    verified: bool
    verification_method: str | None


class StartedOut(Struct):
    conversation: ConversationOut
    token: str


class MessageListOut(Struct):
    items: list[WidgetMessageOut]
    next_cursor: str | None = None


class DisplayedOut(Struct):
    cancelled_mails: int


class VerificationOut(Struct):
    verified: bool
    detail: str


def message_out(message: Message, attachments: Sequence[Attachment] = ()) -> WidgetMessageOut:
    """A message as the learner sees it (operators by name only, never their address)."""
    assert message.id is not None
    return widget_message(
        message.id,
        message.direction,
        message.author_name,
        message.created_at,
        message.text,
        message.reply_text,
        [
            WidgetAttachmentOut(
                id=a.id or 0, filename=a.filename, content_type=a.content_type, size=a.size
            )
            for a in attachments
        ],
    )


def widget_message(
    message_id: int,
    direction: str,
    author_name: str | None,
    created_at: datetime,
    text: str,
    reply_text: str,
    attachments: list[WidgetAttachmentOut],
) -> WidgetMessageOut:
    """The chat bubble of a message's columns: an operator's reply without its quoted history."""
    inbound = direction == "inbound"
    return WidgetMessageOut(
        id=message_id,
        direction="inbound" if inbound else "outbound",
        author=WidgetAuthorOut(kind="learner" if inbound else "operator", name=author_name),
        created_at=created_at,
        text=text if inbound else (reply_text or text),
        attachments=attachments,
    )


def conversation_out(conversation: WidgetConversation, ticket: Ticket) -> ConversationOut:
    return ConversationOut(
        id=conversation.public_id,
        ticket=ticket.number,
        status=ticket.status,
        name=conversation.name,
        email=conversation.email,
        verified=conversation.verified_at is not None,
        verification_method=conversation.verification_method,
    )
