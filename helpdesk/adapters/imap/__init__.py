"""The support mailbox over IMAP (RFC 3501): a small Protocol, aioimaplib, an in-memory twin.

`helpdesk fetch-mail` needs six operations (`mailbox`); everything IMAP-specific (literals,
capabilities, STARTTLS, the MOVE fallback, IDLE) stays in `client` and `wire`. Everything is
addressed by UID, never by sequence number, so concurrent expunges cannot shift targets.
"""

from helpdesk.adapters.imap.client import AioImapMailbox
from helpdesk.adapters.imap.in_memory import InMemoryImapServer, InMemoryMailbox, StoredMessage
from helpdesk.adapters.imap.mailbox import (
    Mailbox,
    MailboxFactory,
    MailboxUnavailable,
    MessageGone,
    MessageUnavailable,
)
from helpdesk.adapters.imap.wire import encode_mailbox_name, parse_fetched_body

__all__ = [
    "AioImapMailbox",
    "InMemoryImapServer",
    "InMemoryMailbox",
    "Mailbox",
    "MailboxFactory",
    "MailboxUnavailable",
    "MessageGone",
    "MessageUnavailable",
    "StoredMessage",
    "encode_mailbox_name",
    "parse_fetched_body",
]
