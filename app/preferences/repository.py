"""SQL for preferences."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category
from app.preferences.models import Preference


async def rules_of(session: AsyncSession, user_id: int) -> list[tuple[Category, str, bool]]:
    rows = await session.execute(
        select(Category, Preference.channel, Preference.enabled)
        .join(Preference, Preference.category_id == Category.id)
        .where(Preference.user_id == user_id)
        .order_by(Category.id, Preference.channel)
    )
    return [(c, ch, en) for c, ch, en in rows]


async def upsert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    stmt = insert(Preference).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "category_id", "channel"],
            set_={"enabled": stmt.excluded.enabled},
        )
    )


async def turned_off(
    session: AsyncSession,
    *,
    category_id: int,
    user_ids: Sequence[int],
    channels: Sequence[str],
) -> set[tuple[int, str]]:
    """The (user, channel) pairs among these that the user turned off for the category."""
    rows = await session.execute(
        select(Preference.user_id, Preference.channel).where(
            Preference.category_id == category_id,
            Preference.user_id.in_(user_ids),
            Preference.channel.in_(channels),
            Preference.enabled.is_(False),
        )
    )
    return {(user_id, channel) for user_id, channel in rows}
