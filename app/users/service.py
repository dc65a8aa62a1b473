"""Rules for users and their profiles."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, NotFound, Unprocessable
from app.kit.timefmt import utcnow
from app.users import profile as profile_ops
from app.users import repository
from app.users.models import User

MAX_IDENTIFIER = 255


def check_identifier(identifier: str) -> str:
    if not identifier or len(identifier) > MAX_IDENTIFIER:
        raise BadRequest(f"identifier must be 1 to {MAX_IDENTIFIER} characters")
    return identifier


async def locked(session: AsyncSession, *, app_id: int, identifier: str) -> User:
    """Return the user, created if needed, locked for this transaction."""
    check_identifier(identifier)
    await repository.ensure(session, app_id, [identifier])
    user = await repository.locked(session, app_id, identifier)
    if user is None:  # ensured above, in this transaction
        raise NotFound("User not found")
    return user


async def merge_profile(
    session: AsyncSession, *, app_id: int, identifier: str, changes: dict[str, Any]
) -> User:
    if "identifier" in changes:
        raise Unprocessable("The profile cannot contain the key `identifier`")
    user = await locked(session, app_id=app_id, identifier=identifier)
    user.profile = profile_ops.merge(user.profile, changes)
    user.updated_at = utcnow()
    await session.flush()
    return user


async def patch_profile(
    session: AsyncSession, *, app_id: int, identifier: str, operations: list[Any]
) -> User:
    user = await locked(session, app_id=app_id, identifier=identifier)
    patched = profile_ops.apply_patch(user.profile, operations)
    if "identifier" in patched:
        raise Unprocessable("The profile cannot contain the key `identifier`")
    user.profile = patched
    user.updated_at = utcnow()
    await session.flush()
    return user


async def profile_of(session: AsyncSession, *, app_id: int, identifier: str) -> dict[str, Any]:
    user = await repository.by_identifier(session, app_id, identifier)
    return user.profile if user is not None else {}


async def delete(session: AsyncSession, *, app_id: int, identifier: str) -> None:
    check_identifier(identifier)
    if not await repository.remove(session, app_id, identifier):
        raise NotFound("User doesn't exist")
