"""SQL for users; every statement is scoped to one app."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import User


async def by_identifier(session: AsyncSession, app_id: int, identifier: str) -> User | None:
    return await session.scalar(
        select(User).where(User.app_id == app_id, User.identifier == identifier)
    )


async def id_of(session: AsyncSession, app_id: int, identifier: str) -> int | None:
    return await session.scalar(
        select(User.id).where(User.app_id == app_id, User.identifier == identifier)
    )


async def ensure(session: AsyncSession, app_id: int, identifiers: Sequence[str]) -> dict[str, int]:
    """Create the users that do not exist yet; return identifier -> id for all of them."""
    if not identifiers:
        return {}
    rows = [{"app_id": app_id, "identifier": i, "profile": _auto_profile(i)} for i in identifiers]
    await session.execute(
        insert(User).values(rows).on_conflict_do_nothing(index_elements=["app_id", "identifier"])
    )
    found = await session.execute(
        select(User.identifier, User.id).where(
            User.app_id == app_id, User.identifier.in_(identifiers)
        )
    )
    return {identifier: user_id for identifier, user_id in found}


async def upsert_profiles(
    session: AsyncSession, app_id: int, profiles: dict[str, dict[str, Any]]
) -> None:
    """Create users or shallow-merge the given attributes into their profiles."""
    if not profiles:
        return
    rows = [
        {"app_id": app_id, "identifier": i, "profile": {**_auto_profile(i), **p}}
        for i, p in profiles.items()
    ]
    created = set(
        await session.scalars(
            insert(User)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["app_id", "identifier"])
            .returning(User.identifier)
        )
    )
    patches = [{"ident": i, "patch": p} for i, p in profiles.items() if p and i not in created]
    if patches:
        table = User.__table__
        assert isinstance(table, Table)
        await session.execute(
            update(table)
            .where(table.c.app_id == app_id, table.c.identifier == bindparam("ident"))
            .values(
                profile=table.c.profile.op("||")(bindparam("patch", type_=JSONB)),
                updated_at=func.now(),
            ),
            patches,
        )


async def remove(session: AsyncSession, app_id: int, identifier: str) -> bool:
    result = await session.execute(
        delete(User).where(User.app_id == app_id, User.identifier == identifier).returning(User.id)
    )
    return result.first() is not None


def _auto_profile(identifier: str) -> dict[str, Any]:
    # Engagespot fills `email` when the identifier itself is an email address.
    if "@" in identifier and "." in identifier.rsplit("@", 1)[-1] and " " not in identifier:
        return {"email": identifier}
    return {}
