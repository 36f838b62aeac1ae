"""Security of the whole inbox, checked over HTTP against every route it has (both databases).

The route lists are read from the application itself, so a page or form added later is
covered without touching these tests: every page carries the strict CSP, every
state-changing request needs the session's CSRF token, and every admin route refuses
agents. Then: no session fixation, cookie flags, disabled operators stopped at once, and
the sign-in rate limits per account and per address on both the password and the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
from litestar import Litestar
from msgspec import structs
from sqlalchemy import select

from helpdesk.app import create_app
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbox.auth import SESSION_COOKIE, admin_only
from helpdesk.inbox.second_factor import PENDING_COOKIE
from helpdesk.models.operators import SecondFactor
from tests.factories import add_ticket
from tests.inbox_helpers import (
    PASSWORD,
    add_inbox_operator,
    attempt_sign_in,
    browser_client,
    csrf_from,
    sign_in,
)
from tests.test_inbox_accounts import code_at, enrol, frozen, password_step, submit_code

_PARAM = re.compile(r"\{(\w+):\w+\}")
# Sign-in steps without a session: their tokens are bound to pre-session cookies (tested below).
_PRE_SESSION = ("/inbox/login", "/inbox/login/code", "/inbox/welcome")
# Server-Sent Event streams never end by themselves; their headers are checked elsewhere.
_STREAMS = re.compile(r"/events$")


def inbox_routes(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """(method, path template, admin only) of every inbox route but OPTIONS."""
    for route in app.routes:
        if not route.path.startswith("/inbox"):
            continue
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            admin = admin_only in handler.resolve_guards()
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield method, route.path, admin


def concrete(path: str, number: int) -> str:
    """A path template filled in: the real ticket number, 1 for the other ids."""
    return _PARAM.sub(lambda m: str(number) if m.group(1) == "number" else "1", path)


def script_sources(policy: str) -> list[str]:
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    return directives.get("script-src", directives.get("default-src", []))


async def test_every_inbox_page_carries_a_csp_without_inline_scripts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime, role="admin")
    ticket = await add_ticket(runtime)
    login_page = await client.get("/inbox/login")
    await sign_in(client)
    app = create_app(runtime.settings, runtime)
    pages = [p for m, p, _ in inbox_routes(app) if m == "GET" and not _STREAMS.search(p)]
    assert {"/inbox", "/inbox/account", "/inbox/admin/operators"} <= set(pages)

    checked = {"/inbox/login": login_page}
    for path in pages:
        checked[path] = await client.get(concrete(path, ticket.number))

    for path, response in checked.items():
        policy = response.headers.get("content-security-policy", "")
        assert script_sources(policy) == ["'self'"], (path, policy)
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, path
        assert response.headers["x-frame-options"] == "DENY", path
        if response.headers.get("content-type", "").startswith("text/html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
            assert not re.search(r"\son[a-z]+=", response.text), path  # no inline handlers


async def test_every_state_changing_inbox_request_needs_the_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime, role="admin")
    ticket = await add_ticket(runtime)
    await sign_in(client)
    app = create_app(runtime.settings, runtime)
    actions = [p for m, p, _ in inbox_routes(app) if m != "GET" and p not in _PRE_SESSION]
    assert "/inbox/admin/operators/{operator_id:int}/disable" in actions

    for path in actions:
        url = concrete(path, ticket.number)
        without = await client.post(url, data={"role": "agent", "body": "forged"})
        forged = await client.post(url, data={"_csrf": "0" * 64, "role": "agent"})
        assert without.status_code == 403, (path, without.status_code)
        assert forged.status_code == 403, (path, forged.status_code)
    assert (await client.get("/inbox/account")).status_code == 200  # nothing signed us out


async def test_pre_session_forms_need_their_own_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    key, _ = await enrol(client, clock)
    async with browser_client(runtime) as stranger:
        await password_step(stranger)
        clock.advance(timedelta(seconds=30))
        code = await stranger.post("/inbox/login/code", data={"code": "123456"})
        welcome = await stranger.post("/inbox/welcome?token=x", data={"password": "p" * 20})
        login = await stranger.post("/inbox/login", data={"email": "a@b.c", "password": "x"})

    assert (code.status_code, welcome.status_code, login.status_code) == (403, 403, 403)
    assert key


async def test_an_agent_is_refused_every_admin_page_and_action(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    await add_inbox_operator(runtime, "siri@kurs.example", "Siri Admin", role="admin")
    ticket = await add_ticket(runtime)
    await sign_in(client)
    app = create_app(runtime.settings, runtime)
    routes = list(inbox_routes(app))
    # Everything under /inbox/admin is guarded, and there is something to check.
    assert all(admin for _, path, admin in routes if path.startswith("/inbox/admin"))
    admin_routes = [(m, p) for m, p, admin in routes if admin]
    assert ("POST", "/inbox/admin/operators/{operator_id:int}/role") in admin_routes

    token = csrf_from((await client.get("/inbox/account")).text)
    for method, path in admin_routes:
        url = concrete(path, ticket.number).replace("/operators/1/", "/operators/2/")
        if method == "GET":
            response = await client.get(url)
        else:
            response = await client.post(url, data={"_csrf": token, "role": "agent"})
        assert response.status_code == 403, (method, path, response.status_code)
    async with browser_client(runtime) as siri:
        await sign_in(siri, "siri@kurs.example")
        assert "Siri Admin" in (await siri.get("/inbox/admin/operators")).text  # still an admin


async def test_a_cookie_planted_before_sign_in_is_never_the_session_after(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await add_inbox_operator(runtime, "mallory@kurs.example", "Mallory", role="agent")
    async with browser_client(runtime) as attacker:
        await sign_in(attacker, "mallory@kurs.example")
        planted = attacker.cookies[SESSION_COOKIE]
    await sign_in(client)
    await enrol(client, clock)
    await client.post(
        "/inbox/logout", data={"_csrf": csrf_from((await client.get("/inbox/account")).text)}
    )
    clock.advance(timedelta(seconds=30))

    async with browser_client(runtime) as victim:
        victim.cookies.set(SESSION_COOKIE, planted)
        # The password step does not touch the planted cookie: it is not signed in as Kari.
        await password_step(victim)
        assert "Mallory" in (await victim.get("/inbox/account")).text
        done = await submit_code(victim, code_at(await _secret_of(runtime), clock))
        issued = done.cookies[SESSION_COOKIE]

    assert issued != planted
    async with browser_client(runtime) as check:
        check.cookies.set(SESSION_COOKIE, planted)
        assert "Mallory" in (await check.get("/inbox/account")).text  # never upgraded to Kari
        check.cookies.set(SESSION_COOKIE, issued)
        assert "Kari Agent" in (await check.get("/inbox/account")).text


async def _secret_of(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        factor = (await session.scalars(select(SecondFactor))).one()
        return factor.secret


def _cookie_header(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def _flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


async def test_cookies_are_httponly_samesite_and_secure_over_https(runtime: Runtime) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    async with browser_client(runtime) as plain:
        await sign_in(plain)
        await enrol(plain, clock)
    clock.advance(timedelta(seconds=30))
    runtime.settings = structs.replace(runtime.settings, base_url="https://support.kurs.example")

    async with browser_client(runtime, "https://testserver") as browser:
        # A proxy header claiming plain HTTP does not drop `Secure`: it follows the
        # configured base URL, never a request header anybody can send.
        browser.headers["x-forwarded-proto"] = "http"
        password = await attempt_sign_in(browser, "kari@kurs.example")
        pending = _cookie_header(password, PENDING_COOKIE)
        done = await submit_code(browser, code_at(await _secret_of(runtime), clock))
        session = _cookie_header(done, SESSION_COOKIE)

    assert {"httponly", "samesite=lax", "secure", "path=/"} <= _flags(session)
    assert {"httponly", "samesite=strict", "secure", "path=/inbox/login"} <= _flags(pending)
    assert "max-age=300" in _flags(pending)


async def test_password_and_code_failures_share_the_per_account_limit(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    key, _ = await enrol(client, clock)

    for _ in range(2):
        assert (await attempt_sign_in(client, "kari@kurs.example", "guess")).status_code == 401
    await password_step(client)  # the right password does not forget the failures
    for _ in range(3):
        assert (await submit_code(client, "000000")).status_code == 401

    clock.advance(timedelta(seconds=30))
    throttled = await submit_code(client, code_at(key, clock))
    locked = await attempt_sign_in(client, "kari@kurs.example", PASSWORD)

    assert throttled.status_code == 429 and "Too many failed sign-ins" in throttled.text
    assert locked.status_code == 429
    assert SESSION_COOKIE not in throttled.cookies


def _from_address(runtime: Runtime, address: str) -> httpx.AsyncClient:
    """A browser whose requests come from `address` (the per-address limit's key)."""
    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_many_failures_from_one_address_stop_the_code_step_too(runtime: Runtime) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    async with browser_client(runtime) as setup:
        await sign_in(setup)
        key, _ = await enrol(setup, clock)

    async with (
        _from_address(runtime, "203.0.113.9") as office,
        _from_address(runtime, "198.51.100.7") as elsewhere,
    ):
        await password_step(office)
        for n in range(20):  # guessing other accounts from the same address
            await attempt_sign_in(office, f"guess{n}@kurs.example", "guess")
        clock.advance(timedelta(seconds=30))
        refused = await submit_code(office, code_at(key, clock))
        await password_step(elsewhere)  # another address is not affected
        accepted = await submit_code(elsewhere, code_at(key, clock))

    assert refused.status_code == 429
    assert accepted.status_code == 303
