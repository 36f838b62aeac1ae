"""A ticket's messages as the conversation view shows them (chat-style sides and labels)."""

from __future__ import annotations

from dataclasses import dataclass

from helpdesk.tickets.queries import MessageRow

DELIVERY_LABELS = {
    "queued": "Queued",
    "sent": "Sent",
    "retrying": "Retrying",
    "failed": "Failed",
    "bounced": "Bounced",
}
MACHINE_LABELS = {
    "auto-reply": "Auto-reply",
    "bounce": "Bounce",
    "list": "Mailing list",
    "loop": "Mail loop",
    "rate-limit": "Rate-limited sender",
}

# Why a message is in this ticket (DESIGN §7 `thread_reason`), in the operator's words.
THREAD_LABELS = {
    "message-id": "Threaded by its In-Reply-To/References",
    "reply-address": "Threaded by the signed reply address",
    "subject-token": "Threaded by the [#number] in its subject",
    "new": "Started this ticket",
    "moved": "Moved here by an operator",
    "split": "Split off by an operator",
}


@dataclass(frozen=True)
class ConversationItem:
    row: MessageRow
    # "learner" (left), "operator" (right), "note" (right, highlighted), "machine" (centre).
    side: str
    # What to show first: the new text of the message, without the quoted history.
    shown_text: str
    # The full text when it holds more than `shown_text` (quoted history, signature).
    full_text: str | None
    machine_label: str | None
    delivery_label: str | None
    thread_label: str | None


def conversation_items(rows: list[MessageRow]) -> list[ConversationItem]:
    """Oldest first, each message with its side, new text and labels."""
    return [_item(row) for row in rows]


def _item(row: MessageRow) -> ConversationItem:
    message = row.message
    side = {"inbound": "learner", "outbound": "operator", "note": "note"}.get(
        message.direction, "learner"
    )
    if message.machine:
        side = "machine"
    text = (message.text or "").strip()
    reply = (message.reply_text or "").strip()
    shown = reply or text
    return ConversationItem(
        row=row,
        side=side,
        shown_text=shown,
        full_text=text if text and text != shown else None,
        machine_label=MACHINE_LABELS.get(message.machine or "", message.machine),
        delivery_label=DELIVERY_LABELS.get(row.delivery_status or "", row.delivery_status)
        if message.direction == "outbound"
        else None,
        thread_label=thread_label(message.thread_reason),
    )


def thread_label(reason: str | None) -> str | None:
    """'Threaded by … (detail)' for a `thread_reason` such as `new; refers to #1001`."""
    if not reason:
        return None
    rule, _, detail = reason.partition(";")
    label = THREAD_LABELS.get(rule.strip(), f"Threaded by {rule.strip()}")
    return f"{label} ({detail.strip()})" if detail.strip() else label
