"""Ticket-page actions through the inbox forms, on SQLite and PostgreSQL.

Merge, split, move, spam, links, participants and canned replies: each works from its
form, is refused without a CSRF token, refuses bad input with a clear message and changes
nothing then (the request's transaction rolls back), and lands in the audit log.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from helpdesk.bootstrap import Runtime
from helpdesk.db import transaction
from helpdesk.errors import Conflict
from helpdesk.models import AuditEvent, CannedReply, Learner, Message, Ticket
from helpdesk.tickets import lifecycle
from helpdesk.tickets import service as tickets
from tests.factories import T0, add_learner_with_history, add_ticket, learner_mail
from tests.inbox_helpers import add_inbox_operator, csrf_from, post_form, sign_in

ADMIN = "admin@kurs.example"


@pytest.fixture
async def agent(client: httpx.AsyncClient, runtime: Runtime) -> httpx.AsyncClient:
    await add_inbox_operator(runtime, name="Kari Agent")
    await sign_in(client)
    return client


async def _admin_client(runtime: Runtime) -> httpx.AsyncClient:
    from tests.inbox_helpers import browser_client

    await add_inbox_operator(runtime, ADMIN, "Anne Admin", role="admin")
    client = browser_client(runtime)
    await sign_in(client, ADMIN)
    return client


async def _ticket(runtime: Runtime, number: int) -> Ticket:
    async with transaction(runtime.sessions) as session:
        return await tickets.get_ticket(session, number)


async def _texts(runtime: Runtime, number: int) -> list[str]:
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        query = select(Message.text).where(col(Message.ticket_id) == ticket.id)
        return list(await session.scalars(query.order_by(col(Message.id))))


async def _actions(runtime: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    async with transaction(runtime.sessions) as session:
        events = await session.scalars(select(AuditEvent).order_by(col(AuditEvent.id)))
        return [(e.action, e.target, e.details) for e in events]


async def _add_learner_message(runtime: Runtime, number: int, text: str) -> int:
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        message = await tickets.append_message(
            session, ticket, learner_mail(text), now=datetime(2026, 11, 21, 11, tzinfo=UTC)
        )
        assert message.id is not None
        return message.id


def _url(number: int) -> str:
    return f"/inbox/tickets/{number}"


# --- merge, split, move, spam ----------------------------------------------------------


async def test_merge_form_moves_everything_and_shows_the_surviving_ticket(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    source = await add_ticket(runtime, subject="Faktura", text="Send faktura til oss")
    target = await add_ticket(runtime, subject="Kursbevis mangler")

    response = await post_form(
        agent, _url(source.number), f"{_url(source.number)}/merge", {"into": f"#{target.number}"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == _url(target.number)
    page = await agent.get(_url(target.number))
    assert "Tickets merged" in page.text and "Send faktura til oss" in page.text
    merged_page = await agent.get(_url(source.number))
    assert (
        f'This ticket was merged into <a href="/inbox/tickets/{target.number}">' in merged_page.text
    )
    assert (await _ticket(runtime, source.number)).status == "closed"
    assert ("ticket.merged", f"ticket:{source.number}", {"into": target.number, "messages": 1}) in (
        await _actions(runtime)
    )


async def test_merge_without_csrf_token_is_refused_and_changes_nothing(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    source = await add_ticket(runtime)
    target = await add_ticket(runtime)
    response = await agent.post(f"{_url(source.number)}/merge", data={"into": str(target.number)})
    assert response.status_code == 403
    assert (await _ticket(runtime, source.number)).status == "new"
    assert len(await _texts(runtime, target.number)) == 1


@pytest.mark.parametrize(
    ("into", "message"),
    [
        ("abc", "Into: type a ticket number such as 1042."),
        ("999999", "No ticket #999999."),
        ("self", "A ticket cannot be merged into itself."),
    ],
)
async def test_merge_with_bad_input_says_why_and_changes_nothing(
    agent: httpx.AsyncClient, runtime: Runtime, into: str, message: str
) -> None:
    source = await add_ticket(runtime)
    into = str(source.number) if into == "self" else into
    response = await post_form(
        agent, _url(source.number), f"{_url(source.number)}/merge", {"into": into}
    )
    assert response.status_code in (404, 409, 422)
    assert message in response.text
    assert "content-security-policy" in response.headers
    assert (await _ticket(runtime, source.number)).status == "new"
    assert "ticket.merged" not in [a for a, _, _ in await _actions(runtime)]


async def test_split_form_opens_the_new_ticket(agent: httpx.AsyncClient, runtime: Runtime) -> None:
    ticket = await add_ticket(runtime)
    message_id = await _add_learner_message(runtime, ticket.number, "Et annet spørsmål: faktura?")

    response = await post_form(
        agent,
        _url(ticket.number),
        f"{_url(ticket.number)}/messages/{message_id}/split",
        {"subject": "Faktura"},
    )

    assert response.status_code == 303
    new_number = int(response.headers["location"].rsplit("/", 1)[1])
    assert new_number != ticket.number
    page = await agent.get(response.headers["location"])
    assert "Et annet spørsmål: faktura?" in page.text and "Split off by an operator" in page.text
    assert "<h1" in page.text and 'Faktura <span class="ticket-number">' in page.text
    assert "Et annet spørsmål: faktura?" not in await _texts(runtime, ticket.number)
    assert (
        "message.split",
        f"ticket:{ticket.number}",
        {"message": message_id, "to": new_number},
    ) in (await _actions(runtime))


async def test_move_form_refuses_a_closed_destination_and_moves_to_an_open_one(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    wrong = await add_ticket(runtime)
    closed = await add_ticket(runtime, status="closed")
    right = await add_ticket(runtime, subject="Faktura")
    message_id = await _add_learner_message(runtime, wrong.number, "Fakturaen er feil")
    action = f"{_url(wrong.number)}/messages/{message_id}/move"

    refused = await post_form(agent, _url(wrong.number), action, {"to": str(closed.number)})
    moved = await post_form(agent, _url(wrong.number), action, {"to": str(right.number)})

    assert refused.status_code == 409 and "is closed" in refused.text
    assert moved.status_code == 303
    assert "Fakturaen er feil" in await _texts(runtime, right.number)
    assert "Fakturaen er feil" not in await _texts(runtime, wrong.number)
    assert [a for a, _, _ in await _actions(runtime)].count("message.moved") == 1


async def test_spam_button_closes_the_ticket_and_it_leaves_the_queue(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime, subject="Billige klokker")
    response = await post_form(agent, _url(ticket.number), f"{_url(ticket.number)}/spam", {})
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    queue = await agent.get("/inbox")
    assert "Ticket marked as spam and closed." in queue.text
    assert "Billige klokker" not in queue.text
    spam = await _ticket(runtime, ticket.number)
    assert (spam.status, spam.tags) == ("closed", ["spam"])
    assert ("ticket.marked_spam", f"ticket:{ticket.number}", {}) in await _actions(runtime)


async def test_not_spam_button_restores_a_ticket_marked_by_mistake(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime, subject="Kursbevis for HMS")
    await post_form(agent, _url(ticket.number), f"{_url(ticket.number)}/spam", {})
    page = await agent.get(_url(ticket.number))
    assert "Closed as spam" in page.text and "Mark as spam" not in page.text

    response = await post_form(agent, _url(ticket.number), f"{_url(ticket.number)}/not-spam", {})
    assert response.status_code == 303 and response.headers["location"] == _url(ticket.number)
    page = await agent.get(_url(ticket.number))
    assert "Not spam: the ticket is open again." in page.text
    assert "Mark as spam" in page.text and "Closed as spam" not in page.text
    assert "Kursbevis for HMS" in (await agent.get("/inbox")).text
    restored = await _ticket(runtime, ticket.number)
    assert (restored.status, restored.tags) == ("open", [])


# --- refusals roll back ----------------------------------------------------------------


async def test_a_refused_form_rolls_back_what_the_service_changed_before_refusing(
    agent: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The priority is changed and audited before the status change fails at the end."""
    ticket = await add_ticket(runtime)

    def refuse_transition(ticket: Ticket, new_status: str) -> None:
        raise Conflict("Someone else closed this ticket meanwhile.")

    monkeypatch.setattr(lifecycle, "check_transition", refuse_transition)
    response = await post_form(
        agent,
        _url(ticket.number),
        f"{_url(ticket.number)}/update",
        {"priority": "urgent", "status": "pending"},
    )

    assert response.status_code == 409
    assert "Someone else closed this ticket meanwhile." in response.text
    after = await _ticket(runtime, ticket.number)
    assert (after.priority, after.status) == ("normal", "new")
    assert "ticket.updated" not in [a for a, _, _ in await _actions(runtime)]


# --- links and participants ------------------------------------------------------------


async def test_link_learner_and_order_found_by_search_then_unlink(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    learner_id, order_ids = await add_learner_with_history(runtime, email="kari@example.no")
    ticket = await add_ticket(runtime, requester="kari.privat@gmail.example")
    url = _url(ticket.number)

    found = await agent.get(url, params={"find": "KARI@example"})
    assert found.status_code == 200 and "Link learner" in found.text
    by_order = await agent.get(url, params={"find": "L-1001-1"})
    assert "Order L-1001-1" in by_order.text
    csrf = csrf_from(found.text)
    linked = await agent.post(f"{url}/learner", data={"_csrf": csrf, "learner_id": learner_id})
    order = await agent.post(f"{url}/orders", data={"_csrf": csrf, "order_id": order_ids[1]})
    assert linked.status_code == order.status_code == 303

    page = await agent.get(url)
    assert "HMS-2026-0042" in page.text and "Nordmann Bygg AS" in page.text
    assert "this ticket</span>" in page.text
    assert (await _ticket(runtime, ticket.number)).learner_id == learner_id

    await agent.post(f"{url}/orders/{order_ids[1]}/unlink", data={"_csrf": csrf})
    await agent.post(f"{url}/learner/unlink", data={"_csrf": csrf})
    assert (await _ticket(runtime, ticket.number)).learner_id is None
    actions = [a for a, _, _ in await _actions(runtime)]
    for action in ("learner_linked", "order_linked", "order_unlinked", "learner_unlinked"):
        assert f"ticket.{action}" in actions


async def test_an_erased_learner_cannot_be_linked(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    learner_id, _ = await add_learner_with_history(runtime)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Learner).where(col(Learner.id) == learner_id).values(erased_at=T0)
        )
    ticket = await add_ticket(runtime, requester="x@example.no")
    response = await post_form(
        agent,
        _url(ticket.number),
        f"{_url(ticket.number)}/learner",
        {"learner_id": str(learner_id)},
    )
    assert response.status_code == 409 and "erased" in response.text
    assert (await _ticket(runtime, ticket.number)).learner_id is None


async def test_participants_are_validated_and_saved(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    ticket = await add_ticket(runtime)
    url = _url(ticket.number)
    saved = await post_form(
        agent,
        url,
        f"{url}/participants",
        {"participants": "Leder@Bygg.no\nregnskap@bygg.no, kari@example.no"},
    )
    assert saved.status_code == 303
    assert (await _ticket(runtime, ticket.number)).participants == [
        "leder@bygg.no",
        "regnskap@bygg.no",
    ]

    for hostile in (
        "ok@bygg.no\r\nBcc: evil@attacker.example",
        "Ola Nordmann <ola@bygg.no>",
        "ola@bygg",
        '"quoted"@bygg.no',
    ):
        refused = await post_form(agent, url, f"{url}/participants", {"participants": hostile})
        assert refused.status_code == 422, hostile
        assert "Participants:" in refused.text and "is not an email address" in refused.text
    assert (await _ticket(runtime, ticket.number)).participants == [
        "leder@bygg.no",
        "regnskap@bygg.no",
    ]
    changes = [d for a, _, d in await _actions(runtime) if a == "ticket.participants_changed"]
    assert changes == [{"added": 2, "removed": 0}]


# --- canned replies --------------------------------------------------------------------


async def test_agents_cannot_manage_canned_replies(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    page = await agent.get("/inbox/admin/canned")
    assert page.status_code == 403
    ticket = await add_ticket(runtime)
    csrf = csrf_from((await agent.get(_url(ticket.number))).text)
    response = await agent.post(
        "/inbox/admin/canned", data={"_csrf": csrf, "title": "x", "body": "y"}
    )
    assert response.status_code == 403
    async with transaction(runtime.sessions) as session:
        assert list(await session.scalars(select(CannedReply))) == []


async def test_admin_manages_canned_replies_and_refusals_keep_the_draft(
    runtime: Runtime,
) -> None:
    admin = await _admin_client(runtime)
    try:
        page = "/inbox/admin/canned"
        created = await post_form(
            admin, page, page, {"title": "Kursbevis", "body": "Hei {first_name}!"}
        )
        assert created.status_code == 303
        duplicate = await post_form(admin, page, page, {"title": "kursbevis", "body": "Noe annet"})
        assert duplicate.status_code == 409 and "already exists" in duplicate.text
        assert "Noe annet" in duplicate.text  # the draft is kept
        empty = await post_form(admin, page, page, {"title": "", "body": ""})
        assert empty.status_code == 422 and "Title: must not be empty." in empty.text
        async with transaction(runtime.sessions) as session:
            (canned,) = await session.scalars(select(CannedReply))
        edited = await post_form(
            admin,
            page,
            f"{page}/{canned.id}",
            {"title": "Kursbevis", "body": "Hei {learner_name}!"},
        )
        assert edited.status_code == 303
        assert "Hei {learner_name}!" in (await admin.get(page)).text
        deleted = await post_form(admin, page, f"{page}/{canned.id}/delete", {})
        assert deleted.status_code == 303
        assert "No canned replies yet." in (await admin.get(page)).text
    finally:
        await admin.aclose()
    actions = [a for a, _, _ in await _actions(runtime)]
    assert actions.count("canned_reply.created") == 1
    assert "canned_reply.updated" in actions and "canned_reply.deleted" in actions


async def test_canned_reply_is_inserted_without_javascript_with_variables_filled_safely(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    hostile_name = "{operator_name} {{ 7*7 }} <script>alert(1)</script>"
    async with transaction(runtime.sessions) as session:
        session.add(
            CannedReply(
                title="Kursbevis",
                body="Hei {first_name}! Sak {ticket_number} gjelder {learner_name}. "
                "{unknown} Mvh {operator_name}",
            )
        )
        ticket, _ = await tickets.create_ticket(
            session,
            subject="Kursbevis",
            channel="widget",
            requester="kari@example.no",
            requester_name=hostile_name,
            first_message=learner_mail(),
            now=T0,
        )
    async with transaction(runtime.sessions) as session:
        (canned,) = await session.scalars(select(CannedReply))
    url = _url(ticket.number)

    page = await post_form(
        agent,
        url,
        f"{url}/reply",
        {"body": "Takk for meldingen.", "action": "insert-canned", "canned": str(canned.id)},
    )

    assert page.status_code == 200
    assert "into the chat widget" in page.text  # the reply form names the channel
    expected = (
        "Takk for meldingen.\n\nHei {operator_name}! Sak "
        f"{ticket.number} gjelder {hostile_name}. {{unknown}} Mvh Kari Agent"
    )
    assert f">{html.escape(expected, quote=False)}</textarea>" in page.text.replace("&#39;", "'")
    assert "<script>alert(1)</script>" not in page.text
    assert "49" not in page.text.split("reply-body")[1].split("</textarea>")[0]
    assert len(await _texts(runtime, ticket.number)) == 1  # nothing was sent


async def test_ticket_page_learner_card_shows_other_tickets_and_restriction(
    agent: httpx.AsyncClient, runtime: Runtime
) -> None:
    learner_id, _ = await add_learner_with_history(runtime, email="kari@example.no")
    older = await add_ticket(runtime, subject="Gammelt spørsmål")
    ticket = await add_ticket(runtime, subject="Nytt spørsmål")
    async with transaction(runtime.sessions) as session:
        await session.execute(update(Ticket).values(learner_id=learner_id))
    page = await agent.get(_url(ticket.number))
    assert f'href="/inbox/tickets/{older.number}">#{older.number} Gammelt spørsmål' in page.text
    assert "Learner id L-1001" in page.text
    assert "2\u202f490,00\u00a0kr" in page.text and "HMS-2026-0042" in page.text
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Learner).where(col(Learner.id) == learner_id).values(restricted_at=T0)
        )
    page = await agent.get(_url(ticket.number))
    assert "Restricted" in page.text
    # Restricted: an agent's card leaves the other tickets out (admins handling the
    # privacy request still see them; helpdesk.privacy.restriction).
    assert f'href="/inbox/tickets/{older.number}"' not in page.text
