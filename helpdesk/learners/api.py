"""Course-platform sync API (DESIGN §6): idempotent PUTs of learners, orders and enrolments."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Controller, Response, put
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.deps import provide_settings
from helpdesk.errors import Forbidden, Unauthorized
from helpdesk.learners import service
from helpdesk.learners.schemas import (
    EnrolmentBody,
    EnrolmentResource,
    LearnerBody,
    LearnerResource,
    OrderBody,
    OrderResource,
)


def require_platform_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: the course platform's bearer key, compared in constant time.

    A guard runs before the body is read, so an unauthenticated caller learns nothing
    about what the API would have made of its request.
    """
    expected = provide_settings(connection.app.state).platform_api_key
    if not expected:
        raise Forbidden("The sync API is disabled: HELPDESK_PLATFORM_API_KEY is not set.")
    scheme, _space, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise Unauthorized("A valid platform API key is required (Authorization: Bearer …).")


def _stored(resource: Any, created: bool) -> Response[Any]:
    """201 for a new record, 200 for an existing one; the body is the stored resource."""
    return Response(resource, status_code=201 if created else 200)


def _created(model: type) -> dict[int, ResponseSpec]:
    return {201: ResponseSpec(data_container=model, description="Created")}


class LearnerSyncController(Controller):
    """The course platform pushes learners, orders and enrolments here."""

    path = "/api/v1"
    guards = [require_platform_key]
    tags = ["course-platform sync"]

    @put("/learners/{external_id:str}", responses=_created(LearnerResource))
    async def put_learner(
        self, db_session: AsyncSession, external_id: str, data: LearnerBody
    ) -> Response[LearnerResource]:
        """Create or replace a learner; links their tickets by email address."""
        learner, created = await service.upsert_learner(
            db_session,
            external_id,
            email=data.email,
            name=data.name,
            locale=data.locale,
            organisation=data.organisation,
        )
        return _stored(LearnerResource.from_model(learner), created)

    @put("/orders/{number:str}", responses=_created(OrderResource))
    async def put_order(
        self, db_session: AsyncSession, number: str, data: OrderBody
    ) -> Response[OrderResource]:
        """Create or replace an order of a known learner."""
        order, created = await service.upsert_order(
            db_session,
            number,
            learner_external_id=data.learner_external_id,
            course=data.course,
            amount_minor=data.amount_minor,
            currency=data.currency,
            status=data.status,
            purchased_at=data.purchased_at,
            buyer_org_number=data.buyer_org_number,
        )
        return _stored(OrderResource.from_model(order, data.learner_external_id), created)

    @put(
        "/learners/{external_id:str}/enrolments/{course:str}",
        responses=_created(EnrolmentResource),
    )
    async def put_enrolment(
        self, db_session: AsyncSession, external_id: str, course: str, data: EnrolmentBody
    ) -> Response[EnrolmentResource]:
        """Create or replace a learner's enrolment in a course."""
        enrolment, created = await service.upsert_enrolment(
            db_session,
            external_id,
            course,
            progress_percent=data.progress_percent,
            completed_at=data.completed_at,
            certificate_number=data.certificate_number,
        )
        return _stored(EnrolmentResource.from_model(enrolment, external_id), created)
