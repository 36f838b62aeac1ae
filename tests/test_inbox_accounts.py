"""Inbox accounts over HTTP: two-step sign-in, sessions, password, notifications, operators.

Every test runs on SQLite and PostgreSQL. TOTP codes are computed with pyotp from the
secret the enrolment page shows, at the instant of a frozen clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import httpx
import pyotp
from sqlalchemy import select
from sqlmodel import col

from helpdesk.adapters.clock import FrozenClock
from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.inbox.auth import SESSION_COOKIE
from helpdesk.inbox.second_factor import PENDING_COOKIE
from helpdesk.models import AuditEvent, Operator, OutboundEmail, Ticket
from tests.factories import add_ticket, bearer, learner_mail
from tests.inbox_helpers import (
    PASSWORD,
    add_inbox_operator,
    attempt_sign_in,
    browser_client,
    csrf_from,
    post_form,
    sign_in,
)
from tests.test_cli import embedded_env, run_cli  # noqa: F401

NOW = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
NEW_PASSWORD = "a much longer passphrase 2026"
_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7 ]+)<')
_CODES = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")
_SETUP_LINK = re.compile(
    r'data-testid="setup-link">http://testserver(/inbox/welcome\?token=[^<]+)<'
)


def frozen(runtime: Runtime, at: datetime = NOW) -> FrozenClock:
    clock = FrozenClock(at)
    runtime.clock = clock
    return clock


def code_at(secret: str, clock: FrozenClock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + timedelta(seconds=30 * steps))


async def audit(runtime: Runtime) -> list[tuple[str, str, str, dict[str, object]]]:
    async with transaction(runtime.sessions) as session:
        events = await session.scalars(select(AuditEvent).order_by(col(AuditEvent.id)))
        return [(e.actor, e.action, e.target, e.details) for e in events]


async def enrol(client: httpx.AsyncClient, clock: FrozenClock) -> tuple[str, list[str]]:
    """Turn on two-step sign-in on the account pages; returns the secret and recovery codes."""
    page = await client.get("/inbox/account/second-factor")
    assert page.status_code == 200, page.text
    secret = _SECRET.search(page.text)
    assert secret, "the enrolment page shows the secret"
    key = secret.group(1).replace(" ", "")
    confirmed = await client.post(
        "/inbox/account/second-factor/confirm",
        data={"_csrf": csrf_from(page.text), "code": code_at(key, clock)},
    )
    assert confirmed.status_code == 200, confirmed.text
    return key, _CODES.findall(confirmed.text)


async def password_step(client: httpx.AsyncClient, email: str = "kari@kurs.example") -> None:
    response = await attempt_sign_in(client, email)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/inbox/login/code")


async def submit_code(client: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await client.get("/inbox/login/code")
    assert page.status_code == 200, page.text
    return await client.post(
        "/inbox/login/code", data={"_csrf": csrf_from(page.text), "code": code}
    )


# --- two-step sign-in ---------------------------------------------------------------------


async def test_enrolment_shows_a_qr_code_and_is_not_active_until_a_code_confirms_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)

    page = await client.get("/inbox/account/second-factor")
    wrong = await client.post(
        "/inbox/account/second-factor/confirm",
        data={"_csrf": csrf_from(page.text), "code": "000000"},
    )

    assert "<svg" in page.text and "otpauth://totp/Helpdesk:kari%40kurs.example" in page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # drawn without script
    assert wrong.status_code == 422 and "That code is not right" in wrong.text
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await sign_in(client)  # still password only: the secret was never confirmed
    key, codes = await enrol(client, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    account = await client.get("/inbox/account")
    assert "10</strong> unused recovery codes" in account.text
    assert codes[0] not in account.text  # the codes were shown once, on enrolment
    assert any(a[1] == "operator.second_factor_enabled" for a in await audit(runtime))
    assert key not in repr(await audit(runtime))


async def test_sign_in_asks_for_the_code_after_the_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    operator_id = await add_inbox_operator(runtime)
    await sign_in(client)
    key, _ = await enrol(client, clock)
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    clock.advance(timedelta(minutes=2))

    await password_step(client)
    cookies_between = dict(client.cookies)
    half_signed_in = await client.get("/inbox")
    response = await submit_code(client, code_at(key, clock))

    assert half_signed_in.status_code == 303  # the pending token is not a session
    assert not cookies_between.get(SESSION_COOKIE) and cookies_between[PENDING_COOKIE]
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    assert response.cookies[SESSION_COOKIE]
    assert (await client.get("/inbox/account")).status_code == 200
    signed_in = [a for a in await audit(runtime) if a[1] == "operator.signed_in"]
    assert signed_in[-1][0] == f"operator:{operator_id}"
    assert signed_in[-1][3]["second_factor"] == "totp"


async def test_a_code_is_not_accepted_twice(client: httpx.AsyncClient, runtime: Runtime) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    key, _ = await enrol(client, clock)
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    clock.advance(timedelta(seconds=60))
    code = code_at(key, clock)
    await password_step(client)
    assert (await submit_code(client, code)).status_code == 303
    await post_form(client, "/inbox/account", "/inbox/logout", {})

    await password_step(client)
    replayed = await submit_code(client, code)

    assert replayed.status_code == 401
    assert "That code is not right" in replayed.text
    clock.advance(timedelta(seconds=30))
    assert (await submit_code(client, code_at(key, clock))).status_code == 303


async def test_a_recovery_code_signs_in_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    clock = frozen(runtime)
    operator_id = await add_inbox_operator(runtime)
    await sign_in(client)
    _, codes = await enrol(client, clock)
    await post_form(client, "/inbox/account", "/inbox/logout", {})

    await password_step(client)
    first = await submit_code(client, codes[3].upper().replace("-", " "))
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await password_step(client)
    again = await submit_code(client, codes[3])

    assert first.status_code == 303
    assert again.status_code == 401
    used = [a for a in await audit(runtime) if a[1] == "operator.recovery_code_used"]
    assert used == [
        (
            f"operator:{operator_id}",
            "operator.recovery_code_used",
            f"operator:{operator_id}",
            {"remaining": 9},
        )
    ]
    assert codes[3] not in repr(await audit(runtime))


async def test_new_recovery_codes_replace_the_old_ones(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    _, old_codes = await enrol(client, clock)

    wrong = await post_form(
        client, "/inbox/account", "/inbox/account/second-factor/recovery-codes", {"password": "x"}
    )
    renewed = await post_form(
        client,
        "/inbox/account",
        "/inbox/account/second-factor/recovery-codes",
        {"password": PASSWORD},
    )
    new_codes = _CODES.findall(renewed.text)
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await password_step(client)
    old = await submit_code(client, old_codes[0])
    new = await submit_code(client, new_codes[0])

    assert wrong.status_code == 422 and "not your password" in wrong.text
    assert renewed.status_code == 200 and len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert old.status_code == 401 and new.status_code == 303
    assert "operator.recovery_codes_renewed" in [a[1] for a in await audit(runtime)]


async def test_the_code_page_without_a_password_first_goes_back_to_the_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    await enrol(client, clock)
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await password_step(client)
    token = client.cookies[PENDING_COOKIE]
    operator_id, expires, mac = token.split(".")

    forged = f"{int(operator_id) + 1}.{expires}.{mac}"
    client.cookies.set(PENDING_COOKIE, forged, path="/inbox/login")
    forged_page = await client.get("/inbox/login/code")
    client.cookies.set(PENDING_COOKIE, token, path="/inbox/login")
    clock.advance(timedelta(minutes=5, seconds=1))
    expired_page = await client.get("/inbox/login/code")

    assert forged_page.status_code == 303 and forged_page.headers["location"] == "/inbox/login"
    assert expired_page.status_code == 303 and expired_page.headers["location"] == "/inbox/login"


async def test_turning_two_step_off_needs_the_password_and_a_code(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    await add_inbox_operator(runtime)
    await sign_in(client)
    key, _ = await enrol(client, clock)
    clock.advance(timedelta(seconds=30))

    wrong = await post_form(
        client,
        "/inbox/account",
        "/inbox/account/second-factor/disable",
        {"password": "not it", "code": code_at(key, clock)},
    )
    right = await post_form(
        client,
        "/inbox/account",
        "/inbox/account/second-factor/disable",
        {"password": PASSWORD, "code": code_at(key, clock)},
    )

    assert wrong.status_code == 422 and "password or code is not right" in wrong.text
    assert right.status_code == 303
    assert "Turn on two-step sign-in" in (await client.get("/inbox/account")).text
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await sign_in(client)  # the password alone again
    assert "operator.second_factor_disabled" in [a[1] for a in await audit(runtime)]


# --- sessions and password -------------------------------------------------------------------


async def test_account_page_lists_my_sessions_and_ends_one(runtime: Runtime) -> None:
    await add_inbox_operator(runtime)
    laptop, phone = browser_client(runtime), browser_client(runtime)
    await sign_in(laptop)
    await sign_in(phone)

    page = await laptop.get("/inbox/account", headers={"user-agent": "Laptop Firefox"})
    ids = re.findall(r'action="/inbox/account/sessions/(\d+)/end"', page.text)
    ended = await laptop.post(
        f"/inbox/account/sessions/{ids[0]}/end", data={"_csrf": csrf_from(page.text)}
    )

    assert page.text.count("<tr>") == 3  # header + two sessions
    assert "This browser" in page.text and len(ids) == 1
    assert ended.status_code == 303
    assert (await phone.get("/inbox")).status_code == 303
    assert (await laptop.get("/inbox/account")).status_code == 200
    await laptop.aclose()
    await phone.aclose()


async def test_changing_the_password_signs_out_other_browsers(runtime: Runtime) -> None:
    await add_inbox_operator(runtime)
    laptop, phone = browser_client(runtime), browser_client(runtime)
    await sign_in(laptop)
    await sign_in(phone)

    short = await post_form(
        laptop,
        "/inbox/account",
        "/inbox/account/password",
        {"current": PASSWORD, "password": "short", "repeat": "short"},
    )
    changed = await post_form(
        laptop,
        "/inbox/account",
        "/inbox/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )

    assert short.status_code == 422 and "at least 12 characters" in short.text
    assert changed.status_code == 303
    assert (await laptop.get("/inbox/account")).status_code == 200
    assert (await phone.get("/inbox")).status_code == 303
    assert (await attempt_sign_in(phone, "kari@kurs.example", PASSWORD)).status_code == 401
    await sign_in(phone, password=NEW_PASSWORD)
    await laptop.aclose()
    await phone.aclose()


async def test_a_wrong_current_password_counts_as_a_failed_sign_in(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    await sign_in(client)

    for _ in range(5):
        wrong = await post_form(
            client,
            "/inbox/account",
            "/inbox/account/password",
            {"current": "guess", "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
        )
        assert wrong.status_code == 422 and "not your current password" in wrong.text
    right_but_late = await post_form(
        client,
        "/inbox/account",
        "/inbox/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )

    assert right_but_late.status_code == 429 and "Too many failed sign-ins" in right_but_late.text


def test_sessions_are_listed_by_browser_and_system() -> None:
    from helpdesk.inbox.browsers import browser_label

    firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    edge = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
    )
    assert browser_label(firefox) == "Firefox on Windows"
    assert browser_label(iphone) == "Safari on iPhone"
    assert browser_label(edge) == "Edge on macOS"
    assert browser_label(None) == "Unknown browser"


# --- notifications ---------------------------------------------------------------------------


async def _opt_in(client: httpx.AsyncClient, **choices: str) -> None:
    response = await post_form(client, "/inbox/account", "/inbox/account/notifications", choices)
    assert response.status_code == 303


async def _notifications(runtime: Runtime) -> list[OutboundEmail]:
    async with transaction(runtime.sessions) as session:
        rows = await session.scalars(
            select(OutboundEmail)
            .where(col(OutboundEmail.kind) == "notification")
            .order_by(col(OutboundEmail.id))
        )
        return list(rows)


async def test_assignment_notifies_an_operator_who_opted_in_without_ticket_content(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    kari = await add_inbox_operator(runtime)
    await add_inbox_operator(runtime, "siri@kurs.example", "Siri Admin", role="admin")
    ticket = await add_ticket(runtime, subject="Hemmelig diagnose", text="Personlig innhold")
    await sign_in(client)
    await _opt_in(client, notify_assigned="on", mail_locale="nb")
    async with browser_client(runtime) as siri:
        await sign_in(siri, "siri@kurs.example")
        from helpdesk.tickets import service as tickets

        async with transaction(runtime.sessions) as session:
            fresh = await tickets.get_ticket(session, ticket.number)
            siri_row = await session.get(Operator, kari + 1)
            assert siri_row is not None
            await tickets.update_ticket(
                session, fresh, operator=siri_row, now=NOW, assignee="kari@kurs.example"
            )

    [mail] = await _notifications(runtime)
    assert mail.recipients == ["kari@kurs.example"] and mail.ticket_id is None
    assert mail.raw is not None
    parsed = message_from_bytes(mail.raw, policy=default)
    body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert parsed["Subject"] == f"Sak #{ticket.number} er tildelt deg"
    assert f"http://testserver/inbox/tickets/{ticket.number}" in body
    assert "Hemmelig" not in mail.raw.decode() and "Personlig" not in mail.raw.decode()
    assert parsed["Auto-Submitted"] == "auto-replied"


async def test_no_notification_for_my_own_assignment_or_without_opting_in(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add_inbox_operator(runtime)
    token_holder = await add_inbox_operator(runtime, "per@kurs.example", "Per Agent")
    ticket = await add_ticket(runtime)
    await sign_in(client)
    await _opt_in(client, notify_assigned="on", notify_learner_reply="on")
    from tests.factories import add_operator

    api = await add_operator(runtime, "robot@kurs.example", "API Robot")

    mine = await client.patch(
        f"/api/v1/tickets/{ticket.number}",
        json={"assignee": "per@kurs.example"},
        headers=bearer(api),
    )
    assert mine.status_code == 200, mine.text
    assert await _notifications(runtime) == []  # Per never opted in
    assert token_holder
    async with transaction(runtime.sessions) as session:
        from helpdesk.tickets import service as tickets

        fresh = await tickets.get_ticket(session, ticket.number)
        kari = await session.scalar(
            select(Operator).where(col(Operator.email_key) == "kari@kurs.example")
        )
        assert kari is not None
        await tickets.update_ticket(session, fresh, operator=kari, now=NOW, assignee=kari.email)
    assert await _notifications(runtime) == []  # assigning oneself is not news


async def test_a_learner_reply_on_my_ticket_notifies_me(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    kari = await add_inbox_operator(runtime)
    ticket = await add_ticket(runtime, assignee_id=kari, status="pending")
    await sign_in(client)
    await _opt_in(client, notify_learner_reply="on", mail_locale="en")
    from helpdesk.tickets import service as tickets

    async with transaction(runtime.sessions) as session:
        fresh = await tickets.get_ticket(session, ticket.number)
        await tickets.append_message(
            session, fresh, learner_mail("Fortsatt ingen kursbevis, se vedlegg"), now=NOW
        )
        await tickets.add_note(
            session,
            fresh,
            operator=(await session.get(Operator, kari)),  # type: ignore[arg-type]
            body="Sjekker",
            now=NOW,
        )

    [mail] = await _notifications(runtime)
    assert mail.raw is not None
    parsed = message_from_bytes(mail.raw, policy=default)
    assert parsed["Subject"] == f"New message from the learner on ticket #{ticket.number}"
    assert "kursbevis" not in mail.raw.decode().lower()


async def test_a_reply_by_email_to_my_ticket_notifies_me_in_the_same_transaction(
    runtime: Runtime,
) -> None:
    from helpdesk.inbound.pipeline import ingest_raw
    from tests.mail_factory import make_mail

    kari = await add_inbox_operator(runtime)
    first = await ingest_raw(runtime, make_mail(message_id="<first@example.no>"), "test")
    async with transaction(runtime.sessions) as session:
        row = await session.get(Operator, kari)
        assert row is not None
        row.notify_learner_reply = True
        ticket = (
            await session.scalars(select(Ticket).where(col(Ticket.number) == first.ticket))
        ).one()
        ticket.assignee_id = kari

    reply = make_mail(
        message_id="<second@example.no>",
        in_reply_to="<first@example.no>",
        subject="Re: Spørsmål om kursbevis",
        body="Beviset mangler fortsatt.",
    )
    result = await ingest_raw(runtime, reply, "test")

    assert result.ticket == first.ticket and result.status != "created"
    [mail] = await _notifications(runtime)
    assert mail.recipients == ["kari@kurs.example"]
    assert mail.raw is not None and b"Beviset" not in mail.raw


async def test_a_disabled_operator_gets_no_notifications(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    kari = await add_inbox_operator(runtime)
    ticket = await add_ticket(runtime, assignee_id=kari)
    await sign_in(client)
    await _opt_in(client, notify_learner_reply="on")
    from helpdesk.tickets import service as tickets

    async with transaction(runtime.sessions) as session:
        row = await session.get(Operator, kari)
        assert row is not None
        row.active = False
    async with transaction(runtime.sessions) as session:
        fresh = await tickets.get_ticket(session, ticket.number)
        await tickets.append_message(session, fresh, learner_mail("Hallo?"), now=NOW)

    assert await _notifications(runtime) == []


# --- operator administration ----------------------------------------------------------------


async def _as_admin(runtime: Runtime) -> httpx.AsyncClient:
    await add_inbox_operator(runtime, "siri@kurs.example", "Siri Admin", role="admin")
    admin = browser_client(runtime)
    await sign_in(admin, "siri@kurs.example")
    return admin


async def test_admin_adds_an_operator_who_chooses_a_password_with_the_one_time_link(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _as_admin(runtime)

    added = await post_form(
        admin,
        "/inbox/admin/operators",
        "/inbox/admin/operators",
        {"name": "Nora Ny", "email": "Nora@Kurs.example", "role": "agent"},
    )
    link = _SETUP_LINK.search(added.text)
    assert added.status_code == 200 and link, added.text
    welcome = await client.get(link.group(1))
    chosen = await client.post(
        link.group(1),
        data={"_csrf": csrf_from(welcome.text), "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    again = await client.get(link.group(1))

    assert "Welcome, Nora Ny" in welcome.text
    assert chosen.status_code == 303 and chosen.headers["location"] == "/inbox/login"
    assert again.status_code == 404 and "no longer works" in again.text
    await sign_in(client, "nora@kurs.example", NEW_PASSWORD)
    listing = await admin.get("/inbox/admin/operators")
    assert "Nora Ny" in listing.text and link.group(1) not in listing.text  # shown once
    actions = [(a[0], a[1]) for a in await audit(runtime)]
    assert ("operator:1", "operator.created") in actions
    assert ("operator:1", "operator.setup_link_issued") in actions
    await admin.aclose()


async def test_adding_an_operator_twice_or_with_a_bad_address_is_explained(
    runtime: Runtime,
) -> None:
    admin = await _as_admin(runtime)

    bad = await post_form(
        admin,
        "/inbox/admin/operators",
        "/inbox/admin/operators",
        {"name": "X", "email": "not an address", "role": "agent"},
    )
    twice = await post_form(
        admin,
        "/inbox/admin/operators",
        "/inbox/admin/operators",
        {"name": "Siri Again", "email": "siri@kurs.example", "role": "agent"},
    )

    assert bad.status_code == 422 and "not a valid email address" in bad.text
    assert twice.status_code == 409 and "already exists" in twice.text
    await admin.aclose()


async def test_an_expired_setup_link_does_not_set_a_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    admin = await _as_admin(runtime)
    added = await post_form(
        admin,
        "/inbox/admin/operators",
        "/inbox/admin/operators",
        {"name": "Nora Ny", "email": "nora@kurs.example", "role": "agent"},
    )
    link = _SETUP_LINK.search(added.text)
    assert link
    welcome = await client.get(link.group(1))
    clock.advance(timedelta(days=3, seconds=1))

    late = await client.post(
        link.group(1),
        data={"_csrf": csrf_from(welcome.text), "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )

    assert late.status_code == 404
    assert (await attempt_sign_in(client, "nora@kurs.example", NEW_PASSWORD)).status_code == 401
    await admin.aclose()


async def test_admin_changes_roles_but_never_removes_the_last_admin(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    kari = await add_inbox_operator(runtime)
    admin = await _as_admin(runtime)

    promoted = await post_form(
        admin, "/inbox/admin/operators", f"/inbox/admin/operators/{kari}/role", {"role": "admin"}
    )
    demote_self = await post_form(
        admin,
        "/inbox/admin/operators",
        f"/inbox/admin/operators/{kari + 1}/role",
        {"role": "agent"},
    )
    await sign_in(client)  # Kari, now the only admin
    last = await post_form(
        client, "/inbox/admin/operators", f"/inbox/admin/operators/{kari}/role", {"role": "agent"}
    )

    assert promoted.status_code == 303 and demote_self.status_code == 303
    assert (await admin.get("/inbox/admin/operators")).status_code == 403  # Siri is an agent
    assert last.status_code == 409 and "last active admin" in last.text
    async with transaction(runtime.sessions) as session:
        roles = {o.email: o.role for o in await session.scalars(select(Operator))}
    assert roles == {"kari@kurs.example": "admin", "siri@kurs.example": "agent"}
    changes = [a for a in await audit(runtime) if a[1] == "operator.role_changed"]
    assert [(a[0], a[2], a[3]) for a in changes] == [
        (f"operator:{kari + 1}", f"operator:{kari}", {"from": "agent", "to": "admin"}),
        (f"operator:{kari + 1}", f"operator:{kari + 1}", {"from": "admin", "to": "agent"}),
    ]
    await admin.aclose()


async def test_disabling_stops_sessions_and_api_tokens_at_once_and_enabling_lets_in_again(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.factories import add_operator

    token = await add_operator(runtime, "kari@kurs.example", "Kari Agent", password=PASSWORD)
    await sign_in(client)
    admin = await _as_admin(runtime)
    assert (await client.get("/api/v1/tickets", headers=bearer(token))).status_code == 200

    disabled = await post_form(
        admin, "/inbox/admin/operators", "/inbox/admin/operators/1/disable", {}
    )

    assert disabled.status_code == 303
    assert (await client.get("/inbox")).status_code == 303
    assert (await client.get("/api/v1/tickets", headers=bearer(token))).status_code == 401
    assert (await attempt_sign_in(client, "kari@kurs.example")).status_code == 401
    enabled = await post_form(
        admin, "/inbox/admin/operators", "/inbox/admin/operators/1/enable", {}
    )
    assert enabled.status_code == 303
    await sign_in(client)
    assert (await client.get("/api/v1/tickets", headers=bearer(token))).status_code == 401
    events = {a[1]: a for a in await audit(runtime)}
    assert events["operator.disabled"][3] == {"sessions": 1, "api_tokens": 1}
    assert events["operator.enabled"][0] == "operator:2"
    await admin.aclose()


async def test_an_admin_cannot_disable_themselves_or_the_last_admin(runtime: Runtime) -> None:
    admin = await _as_admin(runtime)

    response = await post_form(
        admin, "/inbox/admin/operators", "/inbox/admin/operators/1/disable", {}
    )

    assert response.status_code == 409 and "cannot disable yourself" in response.text
    assert (await admin.get("/inbox/account")).status_code == 200
    await admin.aclose()


async def test_admin_resets_a_lost_second_factor(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = frozen(runtime)
    kari = await add_inbox_operator(runtime)
    await sign_in(client)
    await enrol(client, clock)
    admin = await _as_admin(runtime)
    listing = await admin.get("/inbox/admin/operators")
    assert "Reset two-step sign-in of Kari Agent" in listing.text

    reset = await post_form(
        admin, "/inbox/admin/operators", f"/inbox/admin/operators/{kari}/second-factor/reset", {}
    )

    assert reset.status_code == 303
    await post_form(client, "/inbox/account", "/inbox/logout", {})
    await sign_in(client)  # password only
    assert (f"operator:{kari + 1}", "operator.second_factor_reset", f"operator:{kari}") in [
        a[:3] for a in await audit(runtime)
    ]
    await admin.aclose()


# --- command line ----------------------------------------------------------------------------


def test_console_prints_a_setup_link_and_resets_two_step(
    embedded_env: dict[str, str],  # noqa: F811
) -> None:
    assert run_cli(embedded_env, "migrate").returncode == 0
    added = run_cli(
        embedded_env, "operator", "add", "eva@kurs.example", "--name", "Eva", "--role", "admin"
    )
    assert added.returncode == 0, added.stderr

    link = run_cli(embedded_env, "operator", "setup-link", "eva@kurs.example")
    unknown = run_cli(embedded_env, "operator", "setup-link", "nobody@kurs.example")
    reset = run_cli(embedded_env, "operator", "reset-second-factor", "eva@kurs.example")

    assert link.returncode == 0
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/inbox/welcome\?token=[\w-]{43}\n", link.stdout)
    assert unknown.returncode == 1 and "No active operator" in unknown.stderr
    assert reset.returncode == 0 and "was not on" in reset.stderr
