"""Rules for topics: identifiers unique per app; subscribing creates unknown users."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.kit.timefmt import iso, utcnow
from app.topics import repository
from app.topics.models import Topic
from app.topics.schemas import Subscriber, SubscriptionRead, TopicRead
from app.users import repository as users_repository


def derive_identifier(name: str) -> str:
    """The same rule `@engagespot/node` applies: lower case, whitespace runs to `-`."""
    return "-".join(name.lower().split())


async def create(session: AsyncSession, *, app_id: int, name: str, identifier: str | None) -> Topic:
    # A derived identifier has no whitespace, so it always fits IDENTIFIER_PATTERN.
    identifier = identifier or derive_identifier(name)
    topic = await repository.insert_new(session, app_id=app_id, name=name, identifier=identifier)
    if topic is None:
        raise Conflict(f"A topic with identifier '{identifier}' already exists")
    return topic


async def get(session: AsyncSession, *, app_id: int, topic_id: int) -> Topic:
    topic = await repository.by_id(session, app_id, topic_id)
    if topic is None:
        raise NotFound("Topic not found")
    return topic


async def rename(session: AsyncSession, *, app_id: int, topic_id: int, name: str) -> Topic:
    topic = await get(session, app_id=app_id, topic_id=topic_id)
    topic.name = name
    topic.updated_at = utcnow()
    await session.flush()
    return topic


async def delete(session: AsyncSession, *, app_id: int, topic_id: int) -> None:
    await session.delete(await get(session, app_id=app_id, topic_id=topic_id))
    await session.flush()


async def subscribe(
    session: AsyncSession, *, app_id: int, topic_id: int, users: list[Subscriber]
) -> int:
    await get(session, app_id=app_id, topic_id=topic_id)
    channels = {u.identifier: list(dict.fromkeys(u.channels)) for u in users}
    ids = await users_repository.ensure(session, app_id, list(channels))
    await repository.subscribe(session, topic_id, {ids[i]: c for i, c in channels.items()})
    return len(channels)


async def detach(
    session: AsyncSession, *, app_id: int, topic_id: int, identifiers: list[str]
) -> int:
    await get(session, app_id=app_id, topic_id=topic_id)
    ids = await users_repository.ids_of(session, app_id, identifiers)
    return await repository.detach(session, topic_id, list(ids.values()))


async def set_channels(
    session: AsyncSession, *, app_id: int, topic_id: int, identifier: str, channels: list[str]
) -> None:
    await subscribe(
        session,
        app_id=app_id,
        topic_id=topic_id,
        users=[Subscriber(identifier=identifier, channels=channels)],
    )


async def subscriptions(
    session: AsyncSession, *, app_id: int, identifier: str
) -> list[SubscriptionRead]:
    user_id = await users_repository.id_of(session, app_id, identifier)
    if user_id is None:
        return []
    return [
        SubscriptionRead(
            topic=TopicRead.of(topic),
            channels=list(sub.channels),
            createdAt=iso(sub.created_at),
        )
        for topic, sub in await repository.subscriptions_of(session, user_id)
    ]
