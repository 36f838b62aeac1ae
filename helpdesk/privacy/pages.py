"""The learner's self-service links: confirm a privacy request, download an export.

A GET only shows a page; its button POSTs to the same URL, which confirms or downloads.
Mail scanners and link previews follow GET links, so a GET never changes anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Response, Router, get, post
from litestar.di import Provide
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit.service import record_event
from helpdesk.bootstrap import Runtime
from helpdesk.inbox.headers import SECURITY_HEADERS
from helpdesk.models import Learner, PrivacyLink, PrivacyRequest
from helpdesk.outbound.templates import mail_locale
from helpdesk.privacy.cases import request_target
from helpdesk.privacy.notices import KIND_LABELS
from helpdesk.privacy.verification import confirm_link, usable_link
from helpdesk.tickets.api import provide_now

_HEADERS = {**SECURITY_HEADERS, "referrer-policy": "no-referrer"}
_GONE = {
    "nb": "Lenken er ugyldig, allerede brukt eller utløpt.",
    "en": "This link is not valid, has already been used, or has expired.",
}


async def _locale(session: AsyncSession, link: PrivacyLink | None) -> str:
    if link is None:
        return "nb"
    request = await session.get(PrivacyRequest, link.request_id)
    learner = (
        await session.get(Learner, request.learner_id) if request and request.learner_id else None
    )
    return mail_locale(learner.locale if learner else None)


def _page(name: str, status_code: int = 200, **context: Any) -> Template:
    return Template(template_name=f"privacy/{name}.html", context=context, status_code=status_code)


def _gone(locale: str) -> Template:
    return _page("link_invalid", 404, lang=locale, message=_GONE[locale])


async def _kind_label(session: AsyncSession, link: PrivacyLink, locale: str) -> str:
    request = await session.get(PrivacyRequest, link.request_id)
    return KIND_LABELS[locale][request.kind] if request else ""


@get("/privacy/verify/{token:str}", summary="The page of a confirmation link")
async def show_verify(db_session: AsyncSession, now: datetime, token: str) -> Template:
    link = await usable_link(db_session, token, "verify", now)
    locale = await _locale(db_session, link)
    if link is None:
        return _gone(locale)
    return _page(
        "verify", lang=locale, kind=await _kind_label(db_session, link, locale), confirmed=False
    )


@post("/privacy/verify/{token:str}", status_code=200, summary="Confirm the privacy request")
async def confirm_verify(db_session: AsyncSession, now: datetime, token: str) -> Template:
    link = await usable_link(db_session, token, "verify", now)
    locale = await _locale(db_session, link)
    if link is None:
        return _gone(locale)
    await confirm_link(db_session, link, now=now)
    return _page(
        "verify", lang=locale, kind=await _kind_label(db_session, link, locale), confirmed=True
    )


@get("/privacy/exports/{token:str}", summary="The page of an export link")
async def show_export(db_session: AsyncSession, now: datetime, token: str) -> Template:
    link = await usable_link(db_session, token, "export", now)
    locale = await _locale(db_session, link)
    if link is None or link.file_path is None:
        return _gone(locale)
    return _page(
        "export", lang=locale, expires_at=link.expires_at, left=link.max_downloads - link.downloads
    )


@post("/privacy/exports/{token:str}", status_code=200, summary="Download the export")
async def download_export(
    db_session: AsyncSession, runtime: Runtime, now: datetime, token: str
) -> Response[bytes] | Template:
    link = await usable_link(db_session, token, "export", now)
    if link is None or link.file_path is None or not runtime.storage.exists(link.file_path):
        return _gone(await _locale(db_session, link))
    link.downloads += 1
    request = await db_session.get(PrivacyRequest, link.request_id)
    assert request is not None
    await record_event(
        db_session,
        "learner",
        "privacy.export_downloaded",
        request_target(request),
        download=link.downloads,
    )
    return Response(
        runtime.storage.read(link.file_path),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="data-{now:%Y-%m-%d}.zip"'},
    )


def _security_headers(app: Any) -> Any:
    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # The token is in the URL: no-referrer, so it never leaves as a Referer.
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_wrapper if scope["type"] == "http" else send)

    return middleware


privacy_pages = Router(
    path="/",
    route_handlers=[show_verify, confirm_verify, show_export, download_export],
    dependencies={"now": Provide(provide_now, sync_to_thread=False)},
    middleware=[_security_headers],
    include_in_schema=False,
)
