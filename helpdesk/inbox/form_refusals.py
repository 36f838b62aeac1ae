"""Refused inbox forms: show the page with the reason, and roll the request back.

A form handler that caught a HelpdeskError and returned a page would let the request's
transaction commit whatever the service changed before it refused. Instead the handler
raises `FormRefused`: the page is rendered first from a separate session (so it shows
only committed state), and the exception makes `provide_db_session` roll back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.bootstrap import Runtime
from helpdesk.errors import HelpdeskError, ValidationFailed


class FormRefused(Exception):
    """Carries the already rendered page of a refused form."""

    def __init__(self, response: Response[str]) -> None:
        super().__init__(response.status_code)
        self.response = response


def error_text(error: HelpdeskError) -> str:
    """The refusal in words, naming each field of a ValidationFailed."""
    if isinstance(error, ValidationFailed) and error.fields:
        return " ".join(f"{field.capitalize()}: {text}." for field, text in error.fields.items())
    return error.detail


async def refuse(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    build_page: Callable[[AsyncSession], Awaitable[Template]],
) -> NoReturn:
    """Render `build_page` from committed state, then abort the request's transaction."""
    async with runtime.sessions() as session:
        template = await build_page(session)
        engine = request.app.template_engine
        assert engine is not None and template.template_name is not None
        html = engine.get_template(template.template_name).render(
            **template.context, request=request
        )
    raise FormRefused(
        Response(
            html,
            status_code=template.status_code or 400,
            media_type=MediaType.HTML,
            cookies=template.cookies,
        )
    )


def refused_page(_: Request[Any, Any, Any], exc: FormRefused) -> Response[str]:
    """Exception handler: the page `refuse` rendered."""
    return exc.response
