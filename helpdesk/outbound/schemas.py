"""The HTTP shapes of replies and the suppression list (msgspec Structs)."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct


class ReplyIn(Struct, forbid_unknown_fields=True):
    """A reply as JSON; multipart/form-data carries the same fields plus files.

    `force` sends even to recipients on the suppression list (otherwise 409).
    """

    body: str
    force: bool = False


class SuppressionOut(Struct):
    """An address on the suppression list and why it is there."""

    address: str
    reason: str
    since: datetime
