"""Build realistic inbound mail for tests (RFC 5322 bytes via the stdlib)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def make_mail(
    *,
    sender: str = "Kari Nordmann <kari.nordmann@example.no>",
    to: str = "support@kurs.example",
    subject: str = "Spørsmål om kursbevis",
    body: str = "Hei!\n\nJeg har ikke fått kursbeviset mitt.\n\nMvh Kari",
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    references: str | None = None,
    cc: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes, str | None]] = (),  # type: ignore[assignment]
) -> bytes:
    """One message; `attachments` are (filename, content type, bytes, content-id or None)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    if message_id == "auto":
        mail["Message-ID"] = make_msgid(domain="mail.example.no")
    elif message_id:
        mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = references
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    if html:
        mail.add_alternative(html, subtype="html")
    for filename, content_type, content, content_id in attachments:
        maintype, subtype = content_type.split("/")
        if content_id:
            html_part = mail.get_body(("html",))
            target = html_part if html_part is not None else mail
            target.add_related(
                content,
                maintype=maintype,
                subtype=subtype,
                cid=f"<{content_id}>",
                filename=filename,
            )
        else:
            mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()
