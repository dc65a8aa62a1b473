"""SQL for topics and subscriptions; every statement is scoped to one app."""

import json
from collections.abc import Sequence

from sqlalchemy import BigInteger, cast, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.topics.models import Topic, TopicSubscription


async def list_for_app(session: AsyncSession, app_id: int) -> list[Topic]:
    return list(
        await session.scalars(select(Topic).where(Topic.app_id == app_id).order_by(Topic.id))
    )


async def by_id(session: AsyncSession, app_id: int, topic_id: int) -> Topic | None:
    return await session.scalar(select(Topic).where(Topic.app_id == app_id, Topic.id == topic_id))


async def ids_by_identifier(
    session: AsyncSession, app_id: int, identifiers: Sequence[str]
) -> dict[str, int]:
    if not identifiers:
        return {}
    rows = await session.execute(
        select(Topic.identifier, Topic.id).where(
            Topic.app_id == app_id, Topic.identifier.in_(identifiers)
        )
    )
    return {identifier: topic_id for identifier, topic_id in rows}


# Arrays keep this one small statement for any chunk: a VALUES list of 10,000 rows was
# compiled afresh for every call (30,000 bind parameters) and took most of a chunk's time.
# In user order, so two chunks touching the same users lock them in the same order.
_SUBSCRIBE = text(
    """
    INSERT INTO topic_subscriptions (topic_id, user_id, channels)
    SELECT :topic_id, u, CAST(c AS jsonb)
    FROM unnest(CAST(:user_ids AS bigint[]), CAST(:channels AS text[])) AS t(u, c)
    ORDER BY u
    ON CONFLICT (topic_id, user_id) DO UPDATE SET channels = excluded.channels
    WHERE topic_subscriptions.channels IS DISTINCT FROM excluded.channels
    """
)


async def subscribe(
    session: AsyncSession, topic_id: int, channels_by_user: dict[int, list[str]]
) -> None:
    if not channels_by_user:
        return
    await session.execute(
        _SUBSCRIBE,
        {
            "topic_id": topic_id,
            "user_ids": list(channels_by_user),
            "channels": [json.dumps(c) for c in channels_by_user.values()],
        },
    )


async def detach(session: AsyncSession, topic_id: int, user_ids: Sequence[int]) -> int:
    result = await session.execute(
        delete(TopicSubscription).where(
            TopicSubscription.topic_id == topic_id,
            TopicSubscription.user_id == func.any(cast(list(user_ids), ARRAY(BigInteger))),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def subscriptions_of(
    session: AsyncSession, user_id: int
) -> list[tuple[Topic, TopicSubscription]]:
    rows = await session.execute(
        select(Topic, TopicSubscription)
        .join(TopicSubscription, TopicSubscription.topic_id == Topic.id)
        .where(TopicSubscription.user_id == user_id)
        .order_by(Topic.id)
    )
    return [(t, s) for t, s in rows]


async def insert_new(
    session: AsyncSession, *, app_id: int, name: str, identifier: str
) -> Topic | None:
    """Insert a topic; None when the identifier is taken in the app."""
    topic: Topic | None = await session.scalar(
        insert(Topic)
        .values(app_id=app_id, name=name, identifier=identifier)
        .on_conflict_do_nothing(index_elements=["app_id", "identifier"])
        .returning(Topic)
    )
    return topic
