"""Helpers of the inbox tests: signing in through the real form and posting forms with CSRF."""

from __future__ import annotations

import html
import re

import httpx

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.operators import service as operators

PASSWORD = "correct horse battery staple"


def browser_client(runtime: Runtime, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """Another browser on the same application (its own cookie jar), in the test's loop."""
    from helpdesk.app import create_app

    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=base_url)


_CSRF = re.compile(r'name="_csrf" value="([^"]*)"')


def csrf_from(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1))


async def add_inbox_operator(
    runtime: Runtime,
    email: str = "kari@kurs.example",
    name: str = "Kari Agent",
    role: str = "agent",
    password: str = PASSWORD,
) -> int:
    """An operator who can sign in to the inbox; returns the operator id."""
    async with transaction(runtime.sessions) as session:
        operator = await operators.create_operator(session, email, name, role, password)
        assert operator.id is not None
        return operator.id


async def attempt_sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """Fill in and submit the sign-in form as a browser would."""
    form_page = await client.get("/inbox/login")
    return await client.post(
        "/inbox/login",
        data={"_csrf": csrf_from(form_page.text), "email": email, "password": password},
    )


async def sign_in(
    client: httpx.AsyncClient, email: str = "kari@kurs.example", password: str = PASSWORD
) -> None:
    response = await attempt_sign_in(client, email, password)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/inbox"


async def post_form(
    client: httpx.AsyncClient, page_url: str, action: str, fields: dict[str, str]
) -> httpx.Response:
    """Open the page, then submit one of its forms with the page's CSRF token."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"_csrf": csrf_from(page.text), **fields})
