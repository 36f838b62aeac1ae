"""Where a received message's raw bytes are kept, and reading them back.

Nearly all support mail is small. Its raw bytes go into its `InboundMail` row and are
committed with the ticket they produced: one durable write, where a file would cost a
write, two fsyncs (the file and its directory) and a thread hand-off per message — most of
what separated ingest from its floor in bench/ingest.py. A message over `IN_ROW_LIMIT`
(large attachments) goes to file storage under `raw/`, written and fsynced before the row
that points at it commits, as does quarantined mail, whose original is attached to its
ticket as a file.
"""

from __future__ import annotations

from helpdesk.adapters.storage import FileStorage
from helpdesk.models import InboundMail

IN_ROW_LIMIT = 256 * 1024


def kept_in_row(size: int) -> bool:
    """Whether a message of `size` bytes keeps its raw bytes in its row."""
    return size <= IN_ROW_LIMIT


def read_raw(storage: FileStorage, inbound: InboundMail) -> bytes | None:
    """The message's raw bytes, from its row or its file; None once they are gone."""
    if inbound.raw is not None:
        return inbound.raw
    if inbound.storage_path and storage.exists(inbound.storage_path):
        return storage.read(inbound.storage_path)
    return None
