"""Inbox sign-in, sessions and the security of every inbox page (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlmodel import col

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbox.auth import SESSION_COOKIE
from helpdesk.models import AuditEvent, Operator, OperatorSession
from helpdesk.operators.service import hash_token
from tests.inbox_helpers import (
    PASSWORD,
    add_inbox_operator,
    attempt_sign_in,
    browser_client,
    csrf_from,
    post_form,
    sign_in,
)


async def _audit_actions(runtime: Runtime) -> list[tuple[str, str, dict[str, object]]]:
    async with transaction(runtime.sessions) as session:
        events = await session.scalars(select(AuditEvent).order_by(col(AuditEvent.id)))
        return [(e.actor, e.action, e.details) for e in events]


async def test_unauthenticated_inbox_pages_redirect_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/inbox/tickets/7?x=1")

    assert response.status_code == 303
    assert response.headers["location"] == "/inbox/login?next=/inbox/tickets/7%3Fx%3D1"


async def test_sign_in_opens_the_inbox_and_is_audited_without_the_address(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    operator_id = await add_inbox_operator(runtime)

    await sign_in(client)
    inbox = await client.get("/inbox")

    assert inbox.status_code == 200
    assert "Kari Agent" in inbox.text
    signed_in = [a for a in await _audit_actions(runtime) if a[1] == "operator.signed_in"]
    assert [a[0] for a in signed_in] == [f"operator:{operator_id}"]
    assert "kari@kurs.example" not in repr(await _audit_actions(runtime))


async def test_wrong_password_is_refused_with_a_message_and_audited(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    operator_id = await add_inbox_operator(runtime)

    wrong = await attempt_sign_in(client, "kari@kurs.example", "not the password")
    stranger = await attempt_sign_in(client, "nobody@kurs.example", "whatever")

    assert wrong.status_code == 401
    assert "do not match an active operator" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    assert stranger.status_code == 401
    failures = [a for a in await _audit_actions(runtime) if a[1] == "operator.sign_in_failed"]
    assert [a[0] for a in failures] == [f"operator:{operator_id}", "unknown"]
    assert "not the password" not in repr(failures)
    assert "nobody@kurs.example" not in repr(failures)


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    for _ in range(5):
        assert (await attempt_sign_in(client, "kari@kurs.example", "guess")).status_code == 401

    locked = await attempt_sign_in(client, "kari@kurs.example", PASSWORD)

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert SESSION_COOKIE not in locked.cookies


async def test_the_lock_lifts_after_fifteen_minutes(runtime: Runtime) -> None:
    clock = FrozenClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    runtime.clock = clock
    await add_inbox_operator(runtime)
    async with browser_client(runtime) as client:
        for _ in range(5):
            await attempt_sign_in(client, "kari@kurs.example", "guess")
        assert (await attempt_sign_in(client, "kari@kurs.example")).status_code == 429

        clock.advance(timedelta(minutes=15, seconds=1))

        await sign_in(client)


async def test_many_failures_from_one_address_lock_out_that_address(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    for n in range(20):
        await attempt_sign_in(client, f"guess{n}@kurs.example", "guess")

    refused = await attempt_sign_in(client, "kari@kurs.example")

    assert refused.status_code == 429


async def test_sign_in_replaces_a_planted_session_cookie(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    planted = "attacker-chosen-session-value"
    client.cookies.set(SESSION_COOKIE, planted)

    response = await attempt_sign_in(client, "kari@kurs.example")

    issued = response.cookies[SESSION_COOKIE]
    assert issued != planted
    assert len(issued) >= 32  # at least 128 bits of randomness, url-safe encoded
    async with transaction(runtime.sessions) as session:
        hashes = list(await session.scalars(select(col(OperatorSession.token_hash))))
    assert hashes == [hash_token(issued)]  # only the hash is stored


async def test_each_sign_in_gets_a_new_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await add_inbox_operator(runtime)

    first = (await attempt_sign_in(client, "kari@kurs.example")).cookies[SESSION_COOKIE]
    second = (await attempt_sign_in(client, "kari@kurs.example")).cookies[SESSION_COOKIE]

    assert first != second


async def test_session_cookie_flags(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await add_inbox_operator(runtime)

    response = await attempt_sign_in(client, "kari@kurs.example")

    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path", "max-age"} <= flags
    assert "samesite=lax" in header.lower()
    assert "secure" not in flags  # served over http in this test


async def test_session_cookie_is_secure_when_served_over_https(runtime: Runtime) -> None:
    from msgspec import structs

    runtime.settings = structs.replace(runtime.settings, base_url="https://support.kurs.example")
    await add_inbox_operator(runtime)
    async with browser_client(runtime, "https://testserver") as client:
        response = await attempt_sign_in(client, "kari@kurs.example")

    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "secure" in header.lower()


async def test_sign_out_revokes_the_session(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await add_inbox_operator(runtime)
    await sign_in(client)
    token = client.cookies[SESSION_COOKIE]

    response = await post_form(client, "/inbox", "/inbox/logout", {})

    assert response.status_code == 303
    client.cookies.set(SESSION_COOKIE, token)  # a copy of the old cookie no longer works
    assert (await client.get("/inbox")).status_code == 303
    assert "operator.signed_out" in [a[1] for a in await _audit_actions(runtime)]


async def test_sign_out_everywhere_ends_every_session(runtime: Runtime) -> None:
    await add_inbox_operator(runtime)
    clients = [browser_client(runtime) for _ in range(2)]
    laptop, phone = clients
    for browser in clients:
        await sign_in(browser)

    response = await post_form(laptop, "/inbox", "/inbox/logout-everywhere", {})

    assert response.status_code == 303
    assert (await phone.get("/inbox")).status_code == 303
    assert (await laptop.get("/inbox")).status_code == 303
    for browser in clients:
        await browser.aclose()


async def test_deactivated_operator_cannot_sign_in_and_loses_open_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    operator_id = await add_inbox_operator(runtime)
    await sign_in(client)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Operator).where(col(Operator.id) == operator_id).values(active=False)
        )

    assert (await client.get("/inbox")).status_code == 303
    refused = await attempt_sign_in(client, "kari@kurs.example")
    assert refused.status_code == 401


async def test_form_post_without_csrf_token_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    await sign_in(client)

    without = await client.post("/inbox/logout", data={})
    forged = await client.post("/inbox/logout", data={"_csrf": "0" * 64})

    assert without.status_code == 403
    assert forged.status_code == 403
    assert (await client.get("/inbox")).status_code == 200  # still signed in


async def test_sign_in_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)

    response = await client.post(
        "/inbox/login", data={"email": "kari@kurs.example", "password": PASSWORD}
    )

    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


async def test_csrf_token_of_another_session_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    await sign_in(client)
    old_token = csrf_from((await client.get("/inbox")).text)
    await sign_in(client)  # a new session: the old page's token is no longer valid

    response = await client.post("/inbox/logout", data={"_csrf": old_token})

    assert response.status_code == 403


async def test_inbox_pages_carry_a_strict_content_security_policy(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    login = await client.get("/inbox/login")
    await sign_in(client)

    for response in (login, await client.get("/inbox")):
        policy = response.headers["content-security-policy"]
        directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["form-action"] == ["'self'"]
        assert directives["img-src"] == ["'self'", "data:"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in login.text and "onclick" not in login.text


async def test_agent_gets_403_on_the_admin_page_and_admin_sees_operators(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    await add_inbox_operator(runtime, "siri@kurs.example", "Siri Admin", role="admin")

    await sign_in(client)
    as_agent = await client.get("/inbox/admin")
    await sign_in(client, "siri@kurs.example")
    as_admin = await client.get("/inbox/admin")

    assert as_agent.status_code == 403
    assert "This page is for admins" in as_agent.text
    assert as_admin.status_code == 200
    assert "Kari Agent" in as_admin.text and "Siri Admin" in as_admin.text


async def test_json_api_is_untouched_by_inbox_csrf(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.factories import add_operator, bearer

    token = await add_operator(runtime)

    response = await client.get("/api/v1/tickets", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}
