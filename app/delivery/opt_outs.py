"""SQL for phone numbers that opted out of a channel (table `phone_opt_outs`).

Kept apart from the profile on purpose: the profile is the customer's (and, unless
`addressesFromBackendOnly`, the user's) to overwrite, while an opt-out is what the carrier
enforces; a `PUT` of the whole profile must not make Herald pay for messages Twilio will refuse.
Keyed by number, so a user who changes `phoneNumber` is reached at the new one."""

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import PhoneOptOut


async def add(
    session: AsyncSession, *, app_id: int, channel: str, phone: str, provider: str, reason: str
) -> bool:
    """Record the opt-out; False when the number had already opted out."""
    added = await session.scalar(
        insert(PhoneOptOut)
        .values(app_id=app_id, channel=channel, phone=phone, provider=provider, reason=reason)
        .on_conflict_do_nothing(index_elements=["app_id", "channel", "phone"])
        .returning(PhoneOptOut.phone)
    )
    return added is not None


async def remove(session: AsyncSession, *, app_id: int, channel: str, phone: str) -> bool:
    """Forget the opt-out (the number opted back in); False when there was none."""
    result = await session.execute(
        delete(PhoneOptOut)
        .where(
            PhoneOptOut.app_id == app_id,
            PhoneOptOut.channel == channel,
            PhoneOptOut.phone == phone,
        )
        .returning(PhoneOptOut.phone)
    )
    return result.first() is not None


async def opted_out(
    session: AsyncSession, *, app_id: int, channel: str, phones: Collection[str]
) -> set[str]:
    """Which of `phones` opted out of `channel` in the app."""
    if not phones:
        return set()
    rows = await session.scalars(
        select(PhoneOptOut.phone).where(
            PhoneOptOut.app_id == app_id,
            PhoneOptOut.channel == channel,
            PhoneOptOut.phone.in_(list(phones)),
        )
    )
    return set(rows)
