"""Erasure end to end, then a scan for anything left: every column of every table, every
file under the data dir, and the raw bytes of the SQLite database file and its WAL.

Seeded like a real learner: tickets by email (with an attachment) and by the widget (with
a conversation and a one-time code), orders, enrolments, operator replies delivered to
the .eml outbox, acknowledgements, and another learner's ticket that mentions her.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from helpdesk.adapters.clock import FrozenClock
from helpdesk.adapters.smtp import build_transport
from helpdesk.db import transaction
from helpdesk.models import (
    Learner,
    Order,
    PlatformEvent,
    PrivacyRequest,
    Ticket,
    VerificationCode,
    WidgetConversation,
)
from helpdesk.outbound.delivery import deliver_all_due
from helpdesk.privacy.scrub import finish_erasures
from helpdesk.tickets import service as tickets
from tests.factories import add_learner_with_history, add_operator, bearer, learner_mail
from tests.privacy_flow import NOW, confirm_by_link, link_in, mail_in, mail_to, text_of
from tests.widget_factory import CONVERSATIONS, identity_token, widget_settings
from tests.widget_factory import auth as widget_auth
from tests.widget_factory import start as start_widget

NAME = "Kari Nordmann"
EMAIL = "kari@example.no"
PHRASE = "blåbærsyltetøy-7731"
NEEDLES = (NAME, EMAIL, PHRASE)


@pytest.fixture
async def operators(runtime) -> tuple[dict[str, str], dict[str, str]]:
    runtime.clock = FrozenClock(NOW)
    agent = bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))
    admin = bearer(await add_operator(runtime, "admin@kurs.example", "Ada Admin", "admin"))
    return agent, admin


async def deliver(runtime) -> None:
    transport = build_transport(runtime.settings)
    try:
        await deliver_all_due(runtime, transport)
    finally:
        await transport.close()


async def finish_after_delivery(runtime) -> int:
    """Scrub once the confirmation mail has gone (the API's own delivery kick may hold
    the outbox row for a moment, so deliver and retry briefly)."""
    for _ in range(50):
        await deliver(runtime)
        if done := await finish_erasures(runtime):
            return done
        await asyncio.sleep(0.1)
    return 0


async def seed_history(runtime, client, agent) -> tuple[int, list[int]]:
    """Kari's support history; returns (her learner id, the other learner's ticket)."""
    learner_id, _ = await add_learner_with_history(runtime, email=EMAIL, name=NAME)
    pdf = b"%PDF-1.4 kursbevis for " + NAME.encode() + b" " + PHRASE.encode()
    by_mail = await mail_in(
        runtime,
        f"Hei, her er kursbeviset mitt. Hilsen {NAME}, {PHRASE}",
        subject="Kursbevis",
        attachments=[("kursbevis.pdf", "application/pdf", pdf, None)],
    )
    reply = await client.post(
        f"/api/v1/tickets/{by_mail}/replies", json={"body": "Takk, vi ser på det."}, headers=agent
    )
    assert reply.status_code == 201, reply.text
    async with transaction(runtime.sessions) as session:
        ticket, _ = await tickets.create_ticket(
            session,
            subject="Chat",
            channel="widget",
            requester=EMAIL,
            requester_name=NAME,
            first_message=learner_mail(f"Hei fra chatten, {PHRASE}", author_email=EMAIL),
            now=NOW,
        )
        conversation = WidgetConversation(
            public_id="pub-kari-1",
            ticket_id=ticket.id,
            token_hash="a" * 64,
            name=NAME,
            email=EMAIL,
            learner_id=learner_id,
            verified_at=NOW,
            verification_method="code",
        )
        session.add(conversation)
        await session.flush()
        session.add(
            VerificationCode(
                conversation_id=conversation.id,
                code_hash="b" * 64,
                expires_at=NOW + timedelta(minutes=10),
            )
        )
    # And a real widget conversation, signed in on the course site (identity token).
    runtime.settings = widget_settings(runtime.settings)
    conversation, token = await start_widget(
        client,
        message=f"Hei fra kurssiden, {PHRASE}",
        identity_token=identity_token(valid_for=3 * 86400),
    )
    posted = await client.post(
        f"{CONVERSATIONS}/{conversation}/messages",
        json={"body": f"En ting til: {PHRASE}"},
        headers=widget_auth(token),
    )
    assert posted.status_code == 201, posted.text
    # An earlier access request: its export ZIP waits under the data dir.
    asked = await mail_in(runtime, f"Innsyn, takk. {PHRASE}", subject="Innsyn")
    access = (
        await client.post(
            f"/api/v1/tickets/{asked}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    await confirm_by_link(client, link_in((await mail_to(runtime, EMAIL))[-1], "verify"))
    exported = await client.post(f"/api/v1/privacy-requests/{access['id']}/fulfil", headers=agent)
    assert exported.status_code == 200, exported.text
    other = await mail_in(
        runtime,
        f"Min kollega {NAME} ({EMAIL}) sa at kurset var bra.",
        sender="Ola Hansen <ola@firma.example>",
        subject="Kollega",
    )
    # Large enough that its raw bytes are kept in a file, not in the row like the one above.
    scan = ("deltakerliste.pdf", "application/pdf", secrets.token_bytes(300 * 1024), None)
    other_large = await mail_in(
        runtime,
        f"Deltakerlisten: {NAME}, {EMAIL}.",
        sender="Per Berg <per@firma.example>",
        subject="Deltakerliste",
        attachments=[scan],
    )
    await deliver(runtime)
    return learner_id, [other, other_large]


async def request_erasure(runtime, client, agent, admin) -> int:
    """Kari asks, confirms by link; the agent may not erase, the admin does. The request id."""
    number = await mail_in(
        runtime, "Hei! Jeg ber dere slette mine opplysninger.", subject="Sletting"
    )
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "erasure"}, headers=admin
        )
    ).json()
    verify_mail = [m for m in await mail_to(runtime, EMAIL) if "/privacy/verify/" in text_of(m)][-1]
    await confirm_by_link(client, link_in(verify_mail, "verify"))
    refused = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert refused.status_code == 403
    done = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    return int(case["id"])


def _hits(blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [n for n in NEEDLES if n.lower().encode() in lowered]


async def leftovers_in_tables(runtime) -> list[str]:
    found = []
    async with runtime.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in names:
            if runtime.settings.is_sqlite:
                rows = (await connection.execute(text(f'SELECT * FROM "{name}"'))).all()
                blobs = [repr(tuple(row)).encode() for row in rows]
                blobs += [v for row in rows for v in row if isinstance(v, bytes)]
            else:
                rows = (
                    (await connection.execute(text(f'SELECT t::text FROM "{name}" t')))
                    .scalars()
                    .all()
                )
                blobs = [r.encode() for r in rows]
            found += [f"{name}: {hit}" for blob in blobs for hit in _hits(blob)]
    return found


def leftovers_in_files(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        found += [f"{path}: {hit}" for hit in _hits(path.read_bytes())]
        if zipfile.is_zipfile(path):  # exports are deflated: look inside too
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    found += [f"{path}!{member}: {hit}" for hit in _hits(archive.read(member))]
    return found


async def test_erasure_leaves_nothing_but_order_bookkeeping(
    runtime, client, operators, tmp_path
) -> None:
    agent, admin = operators
    learner_id, others = await seed_history(runtime, client, agent)
    assert leftovers_in_files(Path(runtime.settings.data_dir))  # the seed really is there
    request_id = await request_erasure(runtime, client, agent, admin)

    # The confirmation goes to Kari before her address is gone.
    confirmation = (await mail_to(runtime, EMAIL))[-1]
    assert "slettet henvendelsene dine" in text_of(confirmation)
    # Another learner's ticket mentions her: listed, redacted in one click.
    # Their raw mail is rewritten too: one kept in its row, one in a file (the scans below).
    mentions = await client.get(f"/api/v1/privacy-requests/{request_id}/mentions", headers=agent)
    assert mentions.json() == {"tickets": others}
    for ticket in others:
        redacted = await client.post(
            f"/api/v1/privacy-requests/{request_id}/mentions/{ticket}/redact", headers=agent
        )
    assert redacted.json() == {"tickets": []}
    other = others[0]
    detail = (await client.get(f"/api/v1/tickets/{other}", headers=agent)).json()
    assert (
        "Min kollega [slettet] ([slettet]) sa at kurset var bra." in detail["messages"][0]["text"]
    )

    assert await finish_after_delivery(runtime) == 1

    assert await leftovers_in_tables(runtime) == []
    assert leftovers_in_files(Path(runtime.settings.data_dir)) == []
    if runtime.settings.is_sqlite:
        database = Path(runtime.settings.database_url.split("///", 1)[1])
        for path in (database, Path(f"{database}-wal")):
            if path.exists():
                assert _hits(path.read_bytes()) == [], path

    async with transaction(runtime.sessions) as session:
        learner = await session.get(Learner, learner_id)
        assert learner is not None and learner.erased_at is not None and learner.name == "[slettet]"
        orders = list(await session.scalars(select(Order).order_by(Order.number)))
        assert [
            (o.learner_id, o.course, o.amount_minor, o.currency, o.buyer_org_number) for o in orders
        ] == [
            (None, None, 249000, "NOK", "912345678"),
            (None, None, 189000, "NOK", "912345678"),
        ]
        remaining = list(await session.scalars(select(Ticket).order_by(Ticket.number)))
        assert [t.subject for t in remaining] == ["Kollega", "Deltakerliste", "[slettet]"]
        request = await session.get(PrivacyRequest, request_id)
        assert request is not None and request.scrubbed_at is not None and request.kind == "erasure"
        (event,) = await session.scalars(select(PlatformEvent))
        assert (event.type, event.external_id) == ("learner.erasure_requested", "L-1001")


async def test_ticket_under_legal_hold_is_kept_and_the_reply_says_so(
    runtime, client, operators
) -> None:
    agent, admin = operators
    await add_learner_with_history(runtime, email=EMAIL, name=NAME)
    disputed = await mail_in(runtime, "Jeg vil klage på fakturaen.", subject="Faktura")
    hold = await client.put(
        f"/api/v1/tickets/{disputed}/legal-hold",
        json={"reason": "Tvist om faktura", "until": "2027-06-30"},
        headers=admin,
    )
    assert hold.status_code == 200, hold.text
    await request_erasure(runtime, client, agent, admin)
    confirmation = (await mail_to(runtime, EMAIL))[-1]
    assert f"#{disputed}" in text_of(confirmation)
    assert "rettslig bevaringsplikt" in text_of(confirmation)
    assert (await client.get(f"/api/v1/tickets/{disputed}", headers=agent)).status_code == 200


async def test_spoofed_request_from_another_address_erases_and_discloses_nothing(
    runtime, client, operators
) -> None:
    agent, admin = operators
    learner_id, _ = await add_learner_with_history(runtime, email=EMAIL, name=NAME)
    own = await mail_in(runtime, f"Kursbevis, {PHRASE}", subject="Kursbevis")
    # A stranger claims to be Kari from another address.
    spoof = await mail_in(
        runtime,
        f"Jeg er {NAME}. Slett mine opplysninger og send meg innsyn.",
        sender="Kari Nordmann <kari.nordmann@evil.example>",
    )
    case = (
        await client.post(
            f"/api/v1/tickets/{spoof}/privacy-request", json={"kind": "erasure"}, headers=admin
        )
    ).json()
    assert case["status"] == "verified"  # unknown requester: only that ticket itself
    assert (
        await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=admin)
    ).status_code == 200
    async with transaction(runtime.sessions) as session:
        learner = await session.get(Learner, learner_id)
        assert learner is not None and learner.name == NAME and learner.erased_at is None
        assert await session.scalar(select(Ticket).where(Ticket.number == own)) is not None
        assert list(await session.scalars(select(PlatformEvent))) == []
    assert await mail_to(runtime, EMAIL) == []  # nothing about the request went to Kari
    (answer,) = [
        m
        for m in await mail_to(runtime, "kari.nordmann@evil.example")
        if "Auto:" not in m["Subject"]
    ]
    assert PHRASE not in text_of(answer)
    assert "only data we hold about you is this ticket" in text_of(answer)


async def test_sender_failing_dmarc_never_counts_as_the_learner(runtime, client, operators) -> None:
    agent, admin = operators
    runtime.settings = runtime.settings.__class__(
        **{
            **{f: getattr(runtime.settings, f) for f in runtime.settings.__struct_fields__},
            "authserv_id": "mx.kurs.example",
        }
    )
    learner_id, _ = await add_learner_with_history(runtime, email=EMAIL, name=NAME)
    number = await mail_in(
        runtime,
        "Send meg innsyn i alt dere har om meg.",
        headers={"Authentication-Results": "mx.kurs.example; dmarc=fail header.from=example.no"},
    )
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    (answer,) = [m for m in await mail_to(runtime, EMAIL) if "/privacy/exports/" in text_of(m)]
    response = await client.post(link_in(answer, "exports"))
    data = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("data.json"))
    assert data["scope"] == "ticket" and data["profile"] is None and data["orders"] == []


async def test_a_file_another_live_ticket_still_uses_is_kept(runtime, client, operators) -> None:
    agent, admin = operators
    await add_learner_with_history(runtime, email=EMAIL, name=NAME)
    brochure = ("kursbrosjyre.pdf", "application/pdf", b"%PDF-1.4 HMS-kurs 2027", None)
    await mail_in(runtime, "Se vedlagt brosjyre.", subject="Brosjyre", attachments=[brochure])
    colleague = await mail_in(
        runtime,
        "Samme brosjyre her.",
        sender="Per <per@example.no>",
        subject="Brosjyre",
        attachments=[brochure],
    )
    await request_erasure(runtime, client, agent, admin)
    detail = (await client.get(f"/api/v1/tickets/{colleague}", headers=agent)).json()
    (attachment,) = detail["messages"][0]["attachments"]
    download = await client.get(f"/api/v1/attachments/{attachment['id']}", headers=agent)
    assert download.status_code == 200 and download.content == brochure[2]
