"""What admins do to operators: add, change role, disable and enable, reset a second factor.

Every change is audited with the admin as actor. Disabling takes effect at once: the
operator's sessions and API tokens are revoked in the same transaction (and a disabled
operator's remaining credentials are refused anyway). The last active admin can be
neither demoted nor disabled, so an installation never loses its administration; the
check locks the admin rows on PostgreSQL so two admins demoting each other at the same
moment cannot both succeed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.service import record_event
from helpdesk.errors import Conflict, NotFound, ValidationFailed
from helpdesk.models import ApiToken, Operator, OperatorSession
from helpdesk.models.operators import ROLES, SecondFactor
from helpdesk.operators.passwords import issue_setup_link
from helpdesk.operators.second_factor import remove_second_factor
from helpdesk.operators.service import create_operator


def _actor(operator: Operator) -> str:
    return f"operator:{operator.id}"


async def list_operators(session: AsyncSession) -> list[Operator]:
    """Every operator, active ones first, then by name."""
    rows = await session.scalars(
        select(Operator).order_by(col(Operator.active).desc(), col(Operator.name), col(Operator.id))
    )
    return list(rows)


async def enrolled_operator_ids(session: AsyncSession) -> set[int]:
    """Ids of operators whose sign-in asks for a second factor."""
    rows = await session.scalars(
        select(col(SecondFactor.operator_id)).where(col(SecondFactor.confirmed_at).is_not(None))
    )
    return set(rows)


async def get_operator(session: AsyncSession, operator_id: int) -> Operator:
    """The operator with this id, or NotFound (404)."""
    operator = await session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"No operator {operator_id}.")
    return operator


async def add_operator(
    session: AsyncSession, admin: Operator, *, email: str, name: str, role: str, now: datetime
) -> tuple[Operator, str]:
    """A new operator without a password, and the setup token to hand them (shown once)."""
    operator = await create_operator(session, email, name, role, actor=_actor(admin))
    token = await issue_setup_link(session, operator, by=admin, now=now)
    return operator, token


async def change_role(
    session: AsyncSession, admin: Operator, operator: Operator, role: str
) -> bool:
    """agent ↔ admin; refused for the last active admin. False when nothing changed."""
    if role not in ROLES:
        raise ValidationFailed({"role": "must be agent or admin"})
    if role == operator.role:
        return False
    if operator.role == "admin":
        await _keep_an_admin(session, operator, "demote")
    old, operator.role = operator.role, role
    await record_event(
        session,
        _actor(admin),
        "operator.role_changed",
        _actor(operator),
        **{"from": old, "to": role},
    )
    return True


async def disable_operator(
    session: AsyncSession, admin: Operator, operator: Operator, *, now: datetime
) -> bool:
    """Stop the operator at once: inactive, every session and API token revoked."""
    if operator.id == admin.id:
        raise Conflict("You cannot disable yourself; ask another admin.")
    if not operator.active:
        return False
    if operator.role == "admin":
        await _keep_an_admin(session, operator, "disable")
    operator.active = False
    sessions = await _revoke(session, OperatorSession, operator, now)
    tokens = await _revoke(session, ApiToken, operator, now)
    await record_event(
        session,
        _actor(admin),
        "operator.disabled",
        _actor(operator),
        sessions=sessions,
        api_tokens=tokens,
    )
    return True


async def enable_operator(session: AsyncSession, admin: Operator, operator: Operator) -> bool:
    """Let a disabled operator sign in again (revoked sessions and tokens stay revoked)."""
    if operator.active:
        return False
    operator.active = True
    await record_event(session, _actor(admin), "operator.enabled", _actor(operator))
    return True


async def reset_second_factor(session: AsyncSession, admin: Operator, operator: Operator) -> bool:
    """Remove a lost authenticator, so the operator signs in with the password alone."""
    return await remove_second_factor(session, operator, by=admin)


async def _keep_an_admin(session: AsyncSession, operator: Operator, verb: str) -> None:
    others = await session.scalars(
        select(col(Operator.id))
        .where(
            col(Operator.role) == "admin",
            col(Operator.active).is_(True),
            col(Operator.id) != operator.id,
        )
        .with_for_update()
    )
    if not list(others):
        raise Conflict(
            f"You cannot {verb} the last active admin. Make another operator admin first."
        )


async def _revoke(
    session: AsyncSession,
    table: type[OperatorSession] | type[ApiToken],
    operator: Operator,
    now: datetime,
) -> int:
    result = await session.execute(
        update(table)
        .where(col(table.operator_id) == operator.id, col(table.revoked_at).is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
