"""The HTTP shapes of learners, orders and enrolments (DESIGN §6 and §8).

Request bodies keep plain types (`str`, `int`, `datetime`): the service checks the values
(locale, currency, offsets, ranges) so that one 422 can name every bad field at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import msgspec

if TYPE_CHECKING:
    from helpdesk.models import Enrolment, Learner, Order

Moment = Annotated[
    datetime, msgspec.Meta(description="RFC 3339 date-time with an offset; answered in UTC")
]


class LearnerBody(msgspec.Struct):
    """`PUT /api/v1/learners/{external_id}`."""

    email: str
    name: str
    locale: Annotated[str, msgspec.Meta(description="nb, nn or en")]
    organisation: str | None = None


class OrderBody(msgspec.Struct):
    """`PUT /api/v1/orders/{number}`."""

    learner_external_id: str
    course: str
    amount_minor: Annotated[int, msgspec.Meta(description="amount in minor units (øre, cent)")]
    currency: Annotated[str, msgspec.Meta(description="active ISO 4217 code, e.g. NOK")]
    status: Annotated[str, msgspec.Meta(description="pending, paid, refunded or cancelled")]
    purchased_at: Moment
    buyer_org_number: str | None = None


class EnrolmentBody(msgspec.Struct):
    """`PUT /api/v1/learners/{external_id}/enrolments/{course}`."""

    progress_percent: Annotated[int, msgspec.Meta(description="0 to 100")]
    completed_at: Moment | None = None
    certificate_number: str | None = None


class LearnerResource(msgspec.Struct):
    """A learner as stored; also the `learner` of a ticket (DESIGN §8)."""

    external_id: str
    email: str
    name: str
    locale: str
    organisation: str | None
    restricted: bool

    @classmethod
    def from_model(cls, learner: Learner) -> LearnerResource:
        return cls(
            external_id=learner.external_id,
            email=learner.email,
            name=learner.name,
            locale=learner.locale,
            organisation=learner.organisation,
            restricted=learner.restricted_at is not None,
        )


class OrderResource(msgspec.Struct):
    """An order as stored; `learner_external_id` is null once the learner is erased."""

    number: str
    learner_external_id: str | None
    course: str | None
    amount_minor: int
    currency: str
    status: str
    purchased_at: datetime
    buyer_org_number: str | None

    @classmethod
    def from_model(cls, order: Order, learner_external_id: str | None) -> OrderResource:
        return cls(
            number=order.number,
            learner_external_id=learner_external_id,
            course=order.course,
            amount_minor=order.amount_minor,
            currency=order.currency,
            status=order.status,
            purchased_at=order.purchased_at,
            buyer_org_number=order.buyer_org_number,
        )


class EnrolmentResource(msgspec.Struct):
    """A learner's enrolment in a course, as stored."""

    learner_external_id: str
    course: str
    progress_percent: int
    completed_at: datetime | None
    certificate_number: str | None

    @classmethod
    def from_model(cls, enrolment: Enrolment, learner_external_id: str) -> EnrolmentResource:
        return cls(
            learner_external_id=learner_external_id,
            course=enrolment.course,
            progress_percent=enrolment.progress_percent,
            completed_at=enrolment.completed_at,
            certificate_number=enrolment.certificate_number,
        )
