"""Attachment filenames that are safe to show, store and offer for download.

A filename comes from the sender: it may carry a path ("../../etc/passwd",
"C:\\fakepath\\x.pdf"), control characters, a right-to-left override that hides the real
extension ("kursbevis\u202efdp.exe"), decomposed letters from macOS, or hundreds of characters.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from helpdesk.inbound.encoded_words import decode_header_text
from helpdesk.inbound.headers import clean_line

MAX_FILENAME_CHARS = 200  # the column holds 255; leave room for a suffix added on a clash
_MAX_EXTENSION_CHARS = 16
_PATH_SEPARATOR = re.compile(r"[\\/]")
# Characters Windows refuses in filenames and that need quoting in Content-Disposition.
_AWKWARD = re.compile(r'[<>:"|?*]')
_FALLBACK_NAMES = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "text/rfc822-headers": "original-headers.txt",
    "text/plain": "attachment.txt",
    "text/html": "attachment.html",
    "text/calendar": "invitation.ics",
    "image/jpeg": "image.jpg",
    "application/octet-stream": "attachment.bin",
}


def sanitise_filename(raw: str | None, content_type: str) -> str:
    """A display- and download-safe filename; "attachment.<ext>" when nothing usable is left."""
    name = raw or ""
    if "=?" in name:
        # Outlook and Gmail put RFC 2047 words in filename="..." although RFC 2047 §5 forbids it.
        name = decode_header_text(name)
    name = unicodedata.normalize("NFC", name)
    name = _PATH_SEPARATOR.split(name)[-1]
    name = _AWKWARD.sub("_", clean_line(name, 10 * MAX_FILENAME_CHARS))
    name = name.strip(" .")  # no hidden files, no "..", no trailing dots Windows would drop
    return _shorten(name) or fallback_filename(content_type)


def fallback_filename(content_type: str) -> str:
    """A neutral name for a part that has none, with an extension matching its type."""
    if content_type in _FALLBACK_NAMES:
        return _FALLBACK_NAMES[content_type]
    extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return ("image" if content_type.startswith("image/") else "attachment") + extension


def _shorten(name: str) -> str:
    if len(name) <= MAX_FILENAME_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION_CHARS:
        return name[:MAX_FILENAME_CHARS].rstrip(" .")
    return stem[: MAX_FILENAME_CHARS - len(extension) - 1].rstrip(" .") + "." + extension
