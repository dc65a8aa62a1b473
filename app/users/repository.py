"""SQL for users; every statement is scoped to one app."""

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, text, update
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


# Engagespot fills `email` when the identifier itself is an e-mail address.
EMAIL_LIKE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# Array parameters keep this one statement (and under asyncpg's bind limit) for any count.
_ENSURE = text(
    """
    INSERT INTO users (app_id, identifier, profile)
    SELECT :app_id, i,
           CASE WHEN i ~ :email_like THEN jsonb_build_object('email', i) ELSE '{}'::jsonb END
    FROM unnest(CAST(:identifiers AS text[])) AS i
    ON CONFLICT (app_id, identifier) DO NOTHING
    """
)
_IDS = text(
    "SELECT identifier, id FROM users "
    "WHERE app_id = :app_id AND identifier = ANY(CAST(:identifiers AS text[]))"
)


async def ensure(session: AsyncSession, app_id: int, identifiers: Sequence[str]) -> dict[str, int]:
    """Create the users that do not exist yet; return identifier -> id for all of them."""
    if not identifiers:
        return {}
    # Sorted, so concurrent sends to overlapping audiences insert (and wait on) users in one
    # order: in request order two of them can each hold a user the other needs (40P01).
    params = {"app_id": app_id, "identifiers": sorted(identifiers)}
    await session.execute(_ENSURE, {**params, "email_like": EMAIL_LIKE})
    return {identifier: user_id for identifier, user_id in await session.execute(_IDS, params)}


async def upsert_profiles(
    session: AsyncSession, app_id: int, profiles: dict[str, dict[str, Any]]
) -> None:
    """Create users or shallow-merge the given attributes into their profiles."""
    if not profiles:
        return
    rows = [
        {"app_id": app_id, "identifier": i, "profile": {**_auto_profile(i), **p}}
        for i, p in sorted(profiles.items())
    ]
    created = set(
        await session.scalars(
            insert(User)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["app_id", "identifier"])
            .returning(User.identifier)
        )
    )
    patches = [
        {"ident": i, "patch": p} for i, p in sorted(profiles.items()) if p and i not in created
    ]
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
    return {"email": identifier} if re.match(EMAIL_LIKE, identifier) else {}


async def ids_of(session: AsyncSession, app_id: int, identifiers: Sequence[str]) -> dict[str, int]:
    """identifier -> id for those of `identifiers` that exist."""
    if not identifiers:
        return {}
    params = {"app_id": app_id, "identifiers": list(identifiers)}
    return {identifier: user_id for identifier, user_id in await session.execute(_IDS, params)}


async def locked(session: AsyncSession, app_id: int, identifier: str) -> User | None:
    """The user, locked for this transaction and read fresh."""
    return await session.scalar(
        select(User)
        .where(User.app_id == app_id, User.identifier == identifier)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def profiles(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, tuple[str, Any]]:
    """user id -> (identifier, profile) for the given users."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, User.identifier, User.profile).where(User.id.in_(list(user_ids)))
    )
    return {user_id: (identifier, profile) for user_id, identifier, profile in rows}


_REMOVE_TOKEN = text(
    """
    UPDATE users
    SET profile = jsonb_set(
            profile, ARRAY[:key, 'tokens'],
            COALESCE((SELECT jsonb_agg(t) FROM jsonb_array_elements(profile -> :key -> 'tokens') t
                      WHERE t <> to_jsonb(CAST(:token AS text))), '[]'::jsonb)),
        updated_at = now()
    WHERE id = :user_id
      AND jsonb_typeof(profile -> :key -> 'tokens') = 'array'
      AND profile -> :key -> 'tokens' @> jsonb_build_array(CAST(:token AS text))
    """
)


async def remove_token(session: AsyncSession, *, user_id: int, key: str, token: str) -> bool:
    """Take `token` out of the profile's `<key>.tokens` (a dead device token); True if it was
    there."""
    result = await session.execute(_REMOVE_TOKEN, {"user_id": user_id, "key": key, "token": token})
    return bool(result.rowcount)  # type: ignore[attr-defined]
