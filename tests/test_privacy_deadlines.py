"""The legal deadline: one calendar month after receipt, extendable once by up to two."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpdesk.errors import Conflict, ValidationFailed
from helpdesk.models import PrivacyRequest
from helpdesk.privacy.deadlines import add_months, check_extension, due_date


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (at(2026, 1, 31), at(2026, 2, 28)),
        (at(2028, 1, 31), at(2028, 2, 29)),  # leap year
        (at(2028, 1, 29), at(2028, 2, 29)),
        (at(2100, 1, 31), at(2100, 2, 28)),  # divisible by 100, not a leap year
        (at(2000, 1, 30), at(2000, 2, 29)),  # divisible by 400, a leap year
        (at(2026, 3, 31), at(2026, 4, 30)),
        (at(2026, 12, 31), at(2027, 1, 31)),  # across the year end
        (at(2026, 11, 22), at(2026, 12, 22)),
        (at(2028, 2, 29), at(2028, 3, 29)),
    ],
)
def test_due_date_is_one_calendar_month_after_receipt(received: datetime, due: datetime) -> None:
    assert due_date(received) == due


def test_extension_by_two_months_from_a_month_end() -> None:
    assert add_months(at(2026, 12, 31), 2) == at(2027, 2, 28)
    assert add_months(at(2027, 12, 31), 2) == at(2028, 2, 29)


def _request(received: datetime) -> PrivacyRequest:
    return PrivacyRequest(
        ticket_id=1,
        kind="access",
        status="verified",
        received_at=received,
        due_at=due_date(received),
    )


def test_extension_only_once_before_the_original_due_date_with_a_reason() -> None:
    request = _request(at(2026, 1, 31))
    with pytest.raises(ValidationFailed) as bad:
        check_extension(request, 3, " ", at(2026, 2, 1))
    assert set(bad.value.fields) == {"months", "reason"}
    with pytest.raises(Conflict):
        check_extension(request, 1, "Many systems", at(2026, 2, 28))
    assert check_extension(request, 2, " Many systems ", at(2026, 2, 27)) == "Many systems"
    request.extended_until = add_months(request.due_at, 2)
    with pytest.raises(Conflict):
        check_extension(request, 1, "Again", at(2026, 2, 27))
