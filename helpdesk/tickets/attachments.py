"""Serving attachment content to operators (`GET /api/v1/attachments/{id}`).

Operators are recognised by their API token or by their inbox session cookie.

Attachments are whatever a stranger mailed us, so they are served defensively: only
common raster images may display inline (the inline images of sanitised HTML mail);
everything else downloads, never sniffed as something else, in a sandbox with no scripts.
"""

from __future__ import annotations

from urllib.parse import quote

from litestar import Controller, Response, get
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.adapters.storage import FileStorage
from helpdesk.bootstrap import Runtime
from helpdesk.errors import NotFound
from helpdesk.inbox.auth import provide_operator_or_session
from helpdesk.models import Attachment, Operator

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


async def load_attachment(
    session: AsyncSession, storage: FileStorage, attachment_id: int
) -> tuple[Attachment, bytes]:
    """The attachment and its content; NotFound when either is gone."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None or not storage.exists(attachment.storage_path):
        raise NotFound("No such attachment.")
    return attachment, storage.read(attachment.storage_path)


def content_disposition(attachment: Attachment) -> str:
    """RFC 6266 with an RFC 5987 UTF-8 filename, so Åse_Ødegård.pdf keeps its name."""
    kind = "inline" if attachment.content_type in INLINE_TYPES else "attachment"
    ascii_name = attachment.filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(attachment.filename)}"


class AttachmentController(Controller):
    path = "/api/v1/attachments"
    tags = ["attachments"]
    # The inbox links attachments from its pages, so its session cookie works here too.
    dependencies = {"operator": Provide(provide_operator_or_session)}

    @get("/{attachment_id:int}", summary="Download an attachment")
    async def download(
        self, attachment_id: int, db_session: AsyncSession, operator: Operator, runtime: Runtime
    ) -> Response[bytes]:
        attachment, content = await load_attachment(db_session, runtime.storage, attachment_id)
        media_type = (
            attachment.content_type
            if attachment.content_type in INLINE_TYPES
            else "application/octet-stream"
        )
        return Response(
            content,
            media_type=media_type,
            headers={
                "Content-Disposition": content_disposition(attachment),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600",
            },
        )
