"""Rules for users and their profiles."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, BadRequest, NotFound, Unprocessable
from app.kit.timefmt import utcnow
from app.users import profile as profile_ops
from app.users import repository
from app.users.models import User

MAX_IDENTIFIER = 255


class AddressesLocked(AppError):
    status_code = 403


def _guard(before: dict[str, Any], after: dict[str, Any], *, locked: bool) -> None:
    if locked and (changed := profile_ops.addresses_changed(before, after)):
        raise AddressesLocked(
            f"This app accepts address keys ({', '.join(changed)}) only from its backend "
            "(the API secret)"
        )


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
    session: AsyncSession,
    *,
    app_id: int,
    identifier: str,
    changes: dict[str, Any],
    addresses_locked: bool = False,
) -> User:
    if "identifier" in changes:
        raise Unprocessable("The profile cannot contain the key `identifier`")
    user = await locked(session, app_id=app_id, identifier=identifier)
    merged = profile_ops.merge(user.profile, changes)
    _guard(user.profile, merged, locked=addresses_locked)
    user.profile = merged
    user.updated_at = utcnow()
    await session.flush()
    return user


async def patch_profile(
    session: AsyncSession,
    *,
    app_id: int,
    identifier: str,
    operations: list[Any],
    addresses_locked: bool = False,
) -> User:
    user = await locked(session, app_id=app_id, identifier=identifier)
    patched = profile_ops.apply_patch(user.profile, operations)
    if "identifier" in patched:
        raise Unprocessable("The profile cannot contain the key `identifier`")
    _guard(user.profile, patched, locked=addresses_locked)
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
