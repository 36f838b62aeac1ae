"""What the fetcher needs of the support mailbox, and the two ways it can fail.

A `MailboxUnavailable` is about the connection (reconnect with back-off); a
`MessageUnavailable` is about one message (the others are unaffected).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from helpdesk.config import ImapSettings


class MailboxUnavailable(Exception):
    """The server cannot be reached or used right now; reconnect later (with back-off)."""


class MessageUnavailable(Exception):
    """One message could not be fetched or marked; the other messages are unaffected."""


class MessageGone(MessageUnavailable):
    """The UID no longer exists (expunged by another client): there is nothing left to lose."""


class Mailbox(Protocol):
    """One connection to the configured mailbox; make a new one to reconnect."""

    @property
    def can_idle(self) -> bool:
        """Whether `wait_for_news` is woken by the server (IDLE) rather than a timer."""
        ...

    async def connect(self) -> int:
        """Connect, log in and select the mailbox; return its UIDVALIDITY."""
        ...

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending."""
        ...

    async def fetch(self, uid: int) -> bytes:
        """The raw message, without setting \\Seen."""
        ...

    async def mark_processed(self, uid: int) -> None:
        """Move the message to the processed folder if one is configured, else flag it \\Seen."""
        ...

    async def wait_for_news(self, max_wait: float) -> None:
        """Return when the server reports a change (IDLE) or after `max_wait` seconds."""
        ...

    async def close(self) -> None:
        """Log out if still possible and drop the connection; never raises."""
        ...


MailboxFactory = Callable[[ImapSettings], Mailbox]
