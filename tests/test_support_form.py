"""The no-JavaScript support form: CSRF, validation, confirmation, acknowledgement, privacy."""

from __future__ import annotations

import re

import httpx
import msgspec
import pytest
from sqlalchemy import func, select

from helpdesk.models import Message, OutboundEmail, PrivacyRequest, Ticket
from tests.factories import add_learner_with_history
from tests.widget_factory import freeze

FIELDS = {
    "name": "Kari Nordmann",
    "email": "kari@example.no",
    "subject": "Faktura til arbeidsgiver",
    "message": "Kan dere sende fakturaen til firmaet mitt?",
    "order_number": "L-1001-0",
    "privacy": "none",
}


async def open_form(client: httpx.AsyncClient) -> str:
    """GET /support; returns the form's CSRF token (the cookie stays in the client)."""
    page = await client.get("/support")
    assert page.status_code == 200
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


async def count(runtime, model) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_form_shows_every_field_and_the_privacy_notice(client) -> None:
    page = await client.get("/support")

    assert page.status_code == 200
    for label in ("Your name", "Email", "Subject", "Message", "Order number"):
        assert label in page.text
    assert page.text.count('name="privacy"') == 7  # none and the six kinds
    assert 'href="/support/privacy"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await client.get("/support/privacy")).status_code == 200


async def test_a_sent_form_opens_a_ticket_and_queues_the_acknowledgement(runtime, client) -> None:
    freeze(runtime)
    await add_learner_with_history(runtime, email="kari@example.no")
    token = await open_form(client)

    sent = await client.post("/support", data={**FIELDS, "_csrf": token}, follow_redirects=False)

    assert sent.status_code == 303
    confirmation = await client.get(sent.headers["location"])
    async with runtime.sessions() as session:
        ticket = (await session.scalars(select(Ticket))).one()
        message = (await session.scalars(select(Message))).one()
        ack = (await session.scalars(select(OutboundEmail))).one()
    assert f"#{ticket.number}" in confirmation.text
    assert "Thank you" in confirmation.text
    assert (ticket.channel, ticket.subject, ticket.requester) == (
        "form",
        "Faktura til arbeidsgiver",
        "kari@example.no",
    )
    assert ticket.learner_id is None  # typed, not proven: no account data beside it
    assert "Order number: L-1001-0" in message.text
    assert (ack.kind, ack.recipients, ack.ticket_id) == (
        "acknowledgement",
        ["kari@example.no"],
        ticket.id,
    )


async def test_a_forged_confirmation_link_shows_no_number(client) -> None:
    page = await client.get("/support/thanks", params={"ticket": 1001, "sig": "guess"})
    assert page.status_code == 200 and "#1001" not in page.text


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
async def test_a_post_without_the_forms_token_is_refused(runtime, client, csrf) -> None:
    await open_form(client)
    data = dict(FIELDS) if csrf is None else {**FIELDS, "_csrf": csrf}

    refused = await client.post("/support", data=data)

    assert refused.status_code == 403
    assert "did not come from this site" in refused.text
    assert await count(runtime, Ticket) == 0


async def test_a_token_from_another_browser_is_refused(runtime, client) -> None:
    token = await open_form(client)
    client.cookies.clear()  # another browser: the token's cookie is not there

    refused = await client.post("/support", data={**FIELDS, "_csrf": token})

    assert refused.status_code == 403
    assert await count(runtime, Ticket) == 0


async def test_mistakes_are_named_and_the_text_is_kept(runtime, client) -> None:
    token = await open_form(client)
    data = {
        **FIELDS,
        "email": "kari-at-example",
        "subject": "",
        "order_number": "<script>",
        "_csrf": token,
    }

    page = await client.post("/support", data=data)

    assert page.status_code == 422
    assert "Please give an email address" in page.text
    assert "Please write a subject" in page.text
    assert "letters, digits" in page.text
    assert "Kan dere sende fakturaen til firmaet mitt?" in page.text
    assert "<script>" not in page.text
    assert await count(runtime, Ticket) == 0


async def test_the_honeypot_is_refused(runtime, client) -> None:
    token = await open_form(client)

    page = await client.post("/support", data={**FIELDS, "_csrf": token, "website": "x"})

    assert page.status_code == 422
    assert await count(runtime, Ticket) == 0


async def test_a_privacy_choice_starts_a_privacy_case(runtime, client) -> None:
    freeze(runtime)
    token = await open_form(client)

    sent = await client.post(
        "/support",
        data={**FIELDS, "privacy": "access", "_csrf": token},
        follow_redirects=False,
    )

    assert sent.status_code == 303
    async with runtime.sessions() as session:
        case = (await session.scalars(select(PrivacyRequest))).one()
        ticket = (await session.scalars(select(Ticket))).one()
    assert (case.ticket_id, case.kind) == (ticket.id, "access")
    assert case.status in ("awaiting_verification", "verified")


async def test_an_unknown_privacy_choice_is_refused(runtime, client) -> None:
    token = await open_form(client)

    page = await client.post("/support", data={**FIELDS, "privacy": "everything", "_csrf": token})

    assert page.status_code == 422
    assert await count(runtime, PrivacyRequest) == 0


async def test_many_forms_from_one_network_are_refused_with_a_sentence(runtime, client) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings, widget_new_conversations_per_hour=2
    )
    token = await open_form(client)
    mistake = await client.post("/support", data={**FIELDS, "email": "", "_csrf": token})
    assert mistake.status_code == 422  # mistakes do not count against the limit
    for _ in range(2):
        token = await open_form(client)  # each page of the form carries a fresh token
        sent = await client.post(
            "/support", data={**FIELDS, "_csrf": token}, follow_redirects=False
        )
        assert sent.status_code == 303

    token = await open_form(client)
    refused = await client.post("/support", data={**FIELDS, "_csrf": token})

    assert refused.status_code == 429
    assert "Too many messages from your network" in refused.text
    assert await count(runtime, Ticket) == 2


async def test_a_second_tab_of_the_form_does_not_void_the_first(runtime, client) -> None:
    first_tab = await open_form(client)
    await open_form(client)  # the learner opens the form again in another tab

    sent = await client.post(
        "/support", data={**FIELDS, "_csrf": first_tab}, follow_redirects=False
    )

    assert sent.status_code == 303
