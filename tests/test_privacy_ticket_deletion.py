"""When a ticket goes (thread expiry), the export ZIPs of its privacy requests and their
links go with it: no learner's data is left on disk without a row pointing at it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.adapters.clock import FrozenClock
from helpdesk.db import transaction
from helpdesk.models import PrivacyLink, Ticket
from helpdesk.retention.expiry import expire_tickets
from helpdesk.retention.policy import add_months, months_cutoff
from tests.factories import add_learner_with_history, add_operator, bearer
from tests.privacy_flow import NOW, confirm_by_link, link_in, mail_in, mail_to, text_of


@pytest.fixture
async def agent(runtime) -> dict[str, str]:
    runtime.clock = FrozenClock(NOW)
    return bearer(await add_operator(runtime, "agent@kurs.example", "Ola Agent", "agent"))


async def export_files(runtime) -> list[str]:
    """Paths (in the file storage) of every export link's ZIP that is still on disk."""
    async with transaction(runtime.sessions) as session:
        paths = await session.scalars(select(PrivacyLink.file_path))
    return [p for p in paths if p and runtime.storage.exists(p)]


async def test_expired_ticket_takes_its_export_zip_and_links_along(runtime, client, agent) -> None:
    await add_learner_with_history(runtime, email="kari@example.no")
    number = await mail_in(runtime, "Jeg ber om innsyn i opplysningene dere har om meg.")
    case = (
        await client.post(
            f"/api/v1/tickets/{number}/privacy-request", json={"kind": "access"}, headers=agent
        )
    ).json()
    (verify,) = [m for m in await mail_to(runtime, "kari@example.no") if "/verify/" in text_of(m)]
    await confirm_by_link(client, link_in(verify, "verify"))
    done = await client.post(f"/api/v1/privacy-requests/{case['id']}/fulfil", headers=agent)
    assert done.status_code == 200, done.text
    (zip_file,) = await export_files(runtime)
    zip_on_disk = runtime.settings.data_dir / "files" / zip_file
    assert zip_on_disk.is_file()

    later = add_months(NOW, 25)
    async with transaction(runtime.sessions) as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.number == number))
        batch = await expire_tickets(
            session,
            runtime.storage,
            [ticket_id],
            data_dir=runtime.settings.data_dir,
            cutoff=months_cutoff(later, runtime.settings.retention.threads_months),
            today=later.date(),
            now=later,
        )
    assert batch.tickets == 1
    assert batch.files >= 1
    assert not runtime.storage.exists(zip_file) and not zip_on_disk.exists()
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(PrivacyLink)) == 0
