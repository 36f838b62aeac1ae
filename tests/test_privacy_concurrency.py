"""Two operators acting on the same ticket's privacy request at the same moment: one wins,
the other gets a clean 409 — never a 500 — and the learner gets one confirmation mail
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import PrivacyRequest
from tests.factories import add_learner_with_history, add_operator, bearer
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
async def operators(runtime) -> list[dict[str, str]]:
    runtime.clock = FrozenClock(NOW)
    await add_learner_with_history(runtime, email="kari@example.no")
    return [
        bearer(await add_operator(runtime, "ola@kurs.example", "Ola Agent", "agent")),
        bearer(await add_operator(runtime, "ada@kurs.example", "Ada Admin", "admin")),
    ]


async def convert_at_once(client, number: int, operators, kinds: list[str]) -> list[int]:
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/tickets/{number}/privacy-request", json={"kind": kind}, headers=headers
            )
            for kind, headers in zip(kinds, operators, strict=True)
        )
    )
    for response in responses:
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:
            assert response.json()["error"] == "conflict", response.text
    return sorted(r.status_code for r in responses)


async def verification_mails(runtime) -> int:
    return sum("/privacy/verify/" in text_of(m) for m in await mail_to(runtime, "kari@example.no"))


@pytest.mark.parametrize("kinds", [["access", "access"], ["access", "erasure"]])
async def test_two_operators_create_the_same_request_at_once(
    runtime, client, operators, kinds
) -> None:
    number = await mail_in(runtime, "Hei, kan dere ringe meg om kurset?", subject="Spørsmål")
    assert await request_of(runtime, number) is None
    for _ in range(3):  # a few rounds: the race must never end in a 500
        assert await convert_at_once(client, number, operators, kinds) in ([201, 409], [409, 409])
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(PrivacyRequest)) == 1
    assert await verification_mails(runtime) == 1


async def test_two_operators_confirm_the_same_suggestion_at_once(
    runtime, client, operators
) -> None:
    number = await mail_in(runtime, "Jeg ber om innsyn i opplysningene dere har om meg.")
    suggested = await request_of(runtime, number)
    assert suggested is not None and suggested.status == "suggested"
    assert await convert_at_once(client, number, operators, ["access", "erasure"]) == [201, 409]
    case = await request_of(runtime, number)
    assert case is not None and case.status == "awaiting_verification"
    assert await verification_mails(runtime) == 1


async def verified_access_request(runtime, client, operators) -> int:
    number = await mail_in(runtime, "Hei, kan dere ringe meg om kurset?", subject="Spørsmål")
    created = await client.post(
        f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=operators[0]
    )
    (verify,) = [m for m in await mail_to(runtime, "kari@example.no") if "/verify/" in text_of(m)]
    await confirm_by_link(client, link_in(verify, "verify"))
    return int(created.json()["id"])


async def at_once(client, calls) -> list[int]:
    responses = await asyncio.gather(*(client.post(path, **kw) for path, kw in calls))
    for response in responses:
        assert response.status_code in (200, 409), response.text
    return sorted(r.status_code for r in responses)


async def test_two_operators_fulfil_the_same_request_at_once(runtime, client, operators) -> None:
    case = await verified_access_request(runtime, client, operators)
    path = f"/api/v1/privacy-requests/{case}/fulfil"
    assert await at_once(client, [(path, {"headers": h}) for h in operators]) == [200, 409]
    exports = [m for m in await mail_to(runtime, "kari@example.no") if "/exports/" in text_of(m)]
    assert len(exports) == 1  # one export, one mail
    assert await runtime_audit_count(runtime, "privacy.export_sent") == 1


async def test_refusal_and_fulfilment_at_once_end_in_one_outcome(
    runtime, client, operators
) -> None:
    case = await verified_access_request(runtime, client, operators)
    calls = [
        (f"/api/v1/privacy-requests/{case}/fulfil", {"headers": operators[0]}),
        (
            f"/api/v1/privacy-requests/{case}/refuse",
            {"headers": operators[1], "json": {"reason": "Ikke grunnlag."}},
        ),
    ]
    assert await at_once(client, calls) == [200, 409]
    assert (
        await runtime_audit_count(runtime, "privacy.request_completed")
        + (await runtime_audit_count(runtime, "privacy.request_refused"))
        == 1
    )


async def runtime_audit_count(runtime, action: str) -> int:
    return (await audit_actions(runtime)).count(action)
