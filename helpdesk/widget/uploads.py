"""Files a learner attaches in the widget: images and PDF up to 10 MB, judged by content.

The browser's file name and content type are not trusted: the first bytes decide (PNG,
JPEG, GIF, WebP, PDF), and the stored content type is the sniffed one. Files are stored
like mail attachments, once by SHA-256 under the data dir (`runtime.storage`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.adapters.storage import FileStorage
from helpdesk.errors import PayloadTooLarge, ValidationFailed
from helpdesk.models import Attachment, Message
from helpdesk.outbound.headers import safe_filename

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
KINDS = "images (PNG, JPEG, GIF, WebP) and PDF files"
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}


def sniff(content: bytes) -> str | None:
    """The content type the bytes really are, if it is one we accept."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if content[:1024].lstrip().startswith(b"%PDF-"):
        return "application/pdf"
    return None


def checked_upload(filename: str | None, content: bytes) -> tuple[str, str]:
    """(safe file name, sniffed content type); 413 when too large, 422 when not allowed."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"Files can be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not content:
        raise ValidationFailed({"file": "The file is empty."})
    content_type = sniff(content)
    if content_type is None:
        raise ValidationFailed({"file": f"We accept {KINDS} only."})
    name = safe_filename(filename)
    extension = _EXTENSIONS[content_type]
    if not name.lower().endswith(extension) and not (
        content_type == "image/jpeg" and name.lower().endswith(".jpeg")
    ):
        name = f"{name}{extension}"
    return name, content_type


async def store_upload(
    session: AsyncSession,
    storage: FileStorage,
    message: Message,
    name: str,
    content_type: str,
    content: bytes,
) -> Attachment:
    """Keep the file and link it to the learner's message."""
    assert message.id is not None
    stored = storage.put("attachments", content)
    attachment = Attachment(
        message_id=message.id,
        filename=name,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        storage_path=stored.path,
    )
    session.add(attachment)
    await session.flush()
    return attachment
