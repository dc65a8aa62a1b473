"""SQL for topics and subscriptions; every statement is scoped to one app."""

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
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


async def subscribe(
    session: AsyncSession, topic_id: int, channels_by_user: dict[int, list[str]]
) -> None:
    if not channels_by_user:
        return
    stmt = insert(TopicSubscription).values(
        [{"topic_id": topic_id, "user_id": u, "channels": c} for u, c in channels_by_user.items()]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["topic_id", "user_id"], set_={"channels": stmt.excluded.channels}
        )
    )


async def detach(session: AsyncSession, topic_id: int, user_ids: Sequence[int]) -> int:
    result = await session.execute(
        delete(TopicSubscription)
        .where(TopicSubscription.topic_id == topic_id, TopicSubscription.user_id.in_(user_ids))
        .returning(TopicSubscription.user_id)
    )
    return len(result.all())


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
