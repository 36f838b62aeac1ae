"""Privacy requests in the operator inbox: the ticket's privacy card, converting a ticket,
the request page with its actions (CSRF like every inbox form) and the list, overdue first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.adapters.clock import FrozenClock
from tests.factories import add_learner_with_history
from tests.inbox_helpers import add_inbox_operator, post_form, sign_in
from tests.privacy_flow import (
    NOW,
    audit_actions,
    confirm_by_link,
    link_in,
    mail_in,
    mail_to,
    request_of,
    text_of,
)


@pytest.fixture
async def signed_in_admin(runtime, client):
    runtime.clock = FrozenClock(NOW)
    await add_inbox_operator(runtime, "ada@kurs.example", "Ada Admin", "admin")
    await sign_in(client, "ada@kurs.example")
    return client


async def test_operator_converts_a_ticket_and_fulfils_a_restriction_in_the_inbox(
    runtime, signed_in_admin
) -> None:
    client = signed_in_admin
    await add_learner_with_history(runtime, email="kari@example.no")
    number = await mail_in(runtime, "Hei, kan dere ringe meg om kurset?", subject="Spørsmål")
    ticket_page = await client.get(f"/inbox/tickets/{number}")
    assert "Make privacy request" in ticket_page.text

    converted = await post_form(
        client,
        f"/inbox/tickets/{number}",
        f"/inbox/privacy/tickets/{number}/convert",
        {"kind": "restriction"},
    )
    assert converted.status_code == 303
    request_page = await client.get(converted.headers["location"])
    assert "Restriction request" in request_page.text
    assert "Waiting for the learner" in request_page.text

    (verify_mail,) = await mail_to(runtime, "kari@example.no")
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    case = await request_of(runtime, number)
    assert case is not None and case.status == "verified"

    url = f"/inbox/privacy/{case.id}"
    done = await post_form(client, url, f"{url}/fulfil", {})
    assert done.status_code == 303
    assert "Processing restricted" in (await client.get(url)).text
    assert "Processing restricted" in (await client.get(f"/inbox/tickets/{number}")).text
    assert "begrenset behandlingen" in text_of((await mail_to(runtime, "kari@example.no"))[-1])

    lifted = await post_form(client, url, f"{url}/lift-restriction", {})
    assert lifted.status_code == 303
    assert "Processing restricted" not in (await client.get(f"/inbox/tickets/{number}")).text


async def test_inbox_forms_without_csrf_token_are_refused(runtime, signed_in_admin) -> None:
    client = signed_in_admin
    number = await mail_in(runtime, "Slett mine opplysninger, takk.")
    case = await request_of(runtime, number)
    assert case is not None and case.status == "suggested"
    refused = await client.post(
        f"/inbox/privacy/{case.id}/refuse", data={"reason": "Ikke en forespørsel"}
    )
    assert refused.status_code == 403
    assert (await request_of(runtime, number)).status == "suggested"  # type: ignore[union-attr]
    dismissed = await post_form(
        client, f"/inbox/privacy/{case.id}", f"/inbox/privacy/{case.id}/refuse", {"reason": "Spam"}
    )
    assert dismissed.status_code == 303
    assert (await request_of(runtime, number)).status == "refused"  # type: ignore[union-attr]
    assert await mail_to(runtime, "kari.nordmann@example.no") == []  # a dismissal mails nobody


async def test_list_shows_overdue_requests_first(runtime, signed_in_admin) -> None:
    client = signed_in_admin
    first = await mail_in(runtime, "GDPR: innsyn, takk.", subject="Først")
    runtime.clock = FrozenClock(NOW + timedelta(days=20))
    second = await mail_in(
        runtime, "Jeg vil ha innsyn.", subject="Senere", sender="Ola <ola@example.no>"
    )
    runtime.clock = FrozenClock(NOW + timedelta(days=35))
    await sign_in(client, "ada@kurs.example")  # the first session ran out meanwhile
    listing = (await client.get("/inbox/privacy")).text
    assert listing.index(f"#{first}") < listing.index(f"#{second}")
    assert listing.count("Overdue") == 1
    extended = await client.get("/inbox/privacy?status=completed")
    assert "No privacy requests." in extended.text


async def _verified_case(runtime, client, kind: str, body: str) -> tuple[int, str]:
    number = await mail_in(runtime, body)
    converted = await post_form(
        client,
        f"/inbox/tickets/{number}",
        f"/inbox/privacy/tickets/{number}/convert",
        {"kind": kind},
    )
    verify_mail = [
        m for m in await mail_to(runtime, "kari@example.no") if "/privacy/verify/" in text_of(m)
    ][-1]  # this case's (the newest)
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    return number, converted.headers["location"]


async def test_rectification_form_corrects_the_profile(runtime, signed_in_admin) -> None:
    client = signed_in_admin
    await add_learner_with_history(runtime, email="kari@example.no")
    number, url = await _verified_case(
        runtime, client, "rectification", "Retting: navnet mitt er feil."
    )
    page = await client.get(url)
    assert 'name="organisation"' in page.text
    done = await post_form(
        client,
        url,
        f"{url}/fulfil",
        {
            "name": "Kari Nordmann-Berg",
            "email": "kari@example.no",
            "organisation": "Nordmann Bygg AS",
        },
    )
    assert done.status_code == 303
    assert "Rectified: name." in (await client.get(url)).text
    assert "Kari Nordmann-Berg" in (await client.get(f"/inbox/tickets/{number}")).text


async def test_erasure_in_the_inbox_is_for_admins_and_offers_redaction(runtime, client) -> None:
    runtime.clock = FrozenClock(NOW)
    await add_inbox_operator(runtime, "ola@kurs.example", "Ola Agent", "agent")
    await add_inbox_operator(runtime, "ada@kurs.example", "Ada Admin", "admin")
    await add_learner_with_history(runtime, email="kari@example.no", name="Kari Nordmann")
    other = await mail_in(
        runtime, "Kari Nordmann anbefalte kurset.", sender="Per <per@example.no>", subject="Tips"
    )
    await sign_in(client, "ola@kurs.example")
    number, url = await _verified_case(runtime, client, "erasure", "Slett mine opplysninger.")
    refused = await post_form(client, url, f"{url}/fulfil", {})
    assert refused.status_code == 403
    await sign_in(client, "ada@kurs.example")
    assert (await post_form(client, url, f"{url}/fulfil", {})).status_code == 303
    page = await client.get(url)
    assert "Other tickets that mention the erased learner" in page.text and f"#{other}" in page.text
    redacted = await post_form(client, url, f"{url}/mentions/{other}/redact", {})
    assert redacted.status_code == 303
    assert "[slettet] anbefalte kurset." in (await client.get(f"/inbox/tickets/{other}")).text
    assert "Other tickets that mention" not in (await client.get(url)).text


async def test_objection_and_portability_end_in_the_inbox_with_mail_and_audit(
    runtime, signed_in_admin
) -> None:
    client = signed_in_admin
    await add_learner_with_history(runtime, email="kari@example.no")
    _, url = await _verified_case(
        runtime, client, "objection", "Jeg protesterer mot behandlingen av mine opplysninger."
    )
    assert 'name="decision"' in (await client.get(url)).text
    done = await post_form(client, url, f"{url}/fulfil", {"decision": "stop"})
    assert done.status_code == 303
    assert "Objection upheld" in (await client.get(url)).text
    assert "tatt protesten din til følge" in text_of(
        (await mail_to(runtime, "kari@example.no"))[-1]
    )

    _, url = await _verified_case(
        runtime, client, "portability", "Jeg vil ha dataportabilitet for mine opplysninger."
    )
    extended = await post_form(
        client, url, f"{url}/extend", {"months": "1", "reason": "Mange saker å samle."}
    )
    assert extended.status_code == 303
    assert "Mange saker å samle." in text_of((await mail_to(runtime, "kari@example.no"))[-1])
    done = await post_form(client, url, f"{url}/fulfil", {})
    assert done.status_code == 303
    assert "/privacy/exports/" in text_of((await mail_to(runtime, "kari@example.no"))[-1])
    assert "Export sent" in (await client.get(url)).text
    actions = await audit_actions(runtime)
    assert actions.count("privacy.request_completed") == 2
    assert "privacy.deadline_extended" in actions and "privacy.export_sent" in actions


async def test_refusal_in_the_inbox_tells_the_learner_the_grounds(runtime, signed_in_admin) -> None:
    client = signed_in_admin
    await add_learner_with_history(runtime, email="kari@example.no")
    _, url = await _verified_case(runtime, client, "erasure", "Slett mine opplysninger, takk.")
    refused = await post_form(
        client, url, f"{url}/refuse", {"reason": "Saken er under rettslig tvist."}
    )
    assert refused.status_code == 303
    outcome = text_of((await mail_to(runtime, "kari@example.no"))[-1])
    assert "Saken er under rettslig tvist." in outcome
    assert "privacy.request_refused" in await audit_actions(runtime)
