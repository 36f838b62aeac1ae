"""Likely privacy requests in learners' words (Norwegian and English) become suggested
cases on their ticket, whichever channel they came by; ordinary questions do not."""

from __future__ import annotations

import pytest

from helpdesk.db import transaction
from helpdesk.privacy.detection import suggested_kind
from helpdesk.privacy.intake import start_request
from helpdesk.tickets import service as tickets
from tests.factories import add_ticket, learner_mail
from tests.privacy_flow import NOW, mail_in, request_of


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hei, jeg ber om innsyn i opplysningene dere har om meg.", "access"),
        ("Kan dere slette mine opplysninger?", "erasure"),
        ("Slett kontoen min, takk.", "erasure"),
        ("Please delete my data from your systems.", "erasure"),
        ("This is a subject access request under the GDPR.", "access"),
        ("I would like data portability: a copy I can move.", "portability"),
        ("Jeg ønsker retting av e-postadressen min.", "rectification"),
        ("I ask you to restrict processing of my data.", "restriction"),
        (
            "Jeg protesterer mot bruken av opplysningene mine og ber om begrensning av behandling.",
            "restriction",
        ),
        ("I object to processing of my data for marketing.", "objection"),
        ("Hvordan behandler dere personvern?", "access"),
    ],
)
def test_wording_suggests_the_kind(text: str, kind: str) -> None:
    assert suggested_kind(text) == kind
    # Shouted, or mid-sentence after other words: the quick first look must not miss it.
    assert suggested_kind(text.upper()) == kind
    assert suggested_kind("Hei. Ang. kurset: " + text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "Hei, jeg finner ikke kursbeviset mitt.",
        "Can you delete my previous message? I sent it by mistake.",
        "Når starter neste kurs i arbeid i høyden?",
    ],
)
def test_ordinary_questions_are_not_privacy_requests(text: str) -> None:
    assert suggested_kind(text) is None


async def test_mail_and_widget_messages_put_the_ticket_in_the_privacy_queue(runtime) -> None:
    by_mail = await mail_in(runtime, "Hei! Jeg vil ha innsyn i alt dere har om meg.")
    request = await request_of(runtime, by_mail)
    assert request is not None and (request.kind, request.status) == ("access", "suggested")

    widget = await add_ticket(
        runtime, channel="widget", text="Hei, når får jeg kursbevis?", now=NOW
    )
    assert await request_of(runtime, widget.number) is None
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, widget.number)
        await tickets.append_message(
            session, ticket, learner_mail("Forresten: slett mine opplysninger etterpå."), now=NOW
        )
    request = await request_of(runtime, widget.number)
    assert request is not None and (request.kind, request.status) == ("erasure", "suggested")


async def test_detected_again_keeps_one_case_and_a_confirmation_takes_the_chosen_kind(
    runtime,
) -> None:
    number = await mail_in(runtime, "GDPR: hva har dere om meg?")
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        await tickets.append_message(
            session, ticket, learner_mail("Og slett mine opplysninger."), now=NOW
        )
    request = await request_of(runtime, number)
    assert request is not None and (request.kind, request.status) == ("access", "suggested")
    async with transaction(runtime.sessions) as session:
        ticket = await tickets.get_ticket(session, number)
        confirmed = await start_request(session, ticket, "erasure", now=NOW, actor="form")
        assert confirmed.id == request.id
    # The sender is no registered learner: the case covers only this ticket, verified as is.
    request = await request_of(runtime, number)
    assert request is not None and (request.kind, request.status) == ("erasure", "verified")
    assert request.verification_method == "unknown-requester"
