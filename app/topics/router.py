from typing import Annotated

from fastapi import APIRouter, Path, status

from app.auth.dependencies import BackendApp
from app.db import SessionDep
from app.errors import answers
from app.kit.types import DbId
from app.topics import repository, service
from app.topics.schemas import (
    Changed,
    Channels,
    Detach,
    Subscribe,
    SubscriptionRead,
    TopicCreate,
    TopicRead,
    TopicUpdate,
    UserIdentifier,
)

router = APIRouter(tags=["topics"])
Identifier = Annotated[UserIdentifier, Path()]


@router.get("/topics/subscriptions/{identifier}", response_model=list[SubscriptionRead])
async def list_subscriptions(
    session: SessionDep, principal: BackendApp, identifier: Identifier
) -> list[SubscriptionRead]:
    """List the topics a user is subscribed to, with the channels of each subscription."""
    return await service.subscriptions(session, app_id=principal.app.id, identifier=identifier)


@router.post(
    "/topics", status_code=status.HTTP_201_CREATED, response_model=TopicRead, responses=answers(409)
)
async def create_topic(session: SessionDep, principal: BackendApp, body: TopicCreate) -> TopicRead:
    """Create a topic; without `identifier` it is derived from the name."""
    topic = await service.create(
        session, app_id=principal.app.id, name=body.name, identifier=body.identifier
    )
    return TopicRead.of(topic)


@router.get("/topics", response_model=list[TopicRead])
async def list_topics(session: SessionDep, principal: BackendApp) -> list[TopicRead]:
    """List the app's topics."""
    return [TopicRead.of(t) for t in await repository.list_for_app(session, principal.app.id)]


@router.patch("/topics/{topic_id}", response_model=TopicRead)
async def rename_topic(
    session: SessionDep, principal: BackendApp, topic_id: DbId, body: TopicUpdate
) -> TopicRead:
    """Rename a topic."""
    topic = await service.rename(
        session, app_id=principal.app.id, topic_id=topic_id, name=body.name
    )
    return TopicRead.of(topic)


@router.delete("/topics/{topic_id}", response_model=Changed)
async def delete_topic(session: SessionDep, principal: BackendApp, topic_id: DbId) -> Changed:
    """Delete a topic and its subscriptions."""
    await service.delete(session, app_id=principal.app.id, topic_id=topic_id)
    return Changed(message="Topic deleted", count=1)


@router.post("/topics/{topic_id}/users", response_model=Changed)
async def subscribe_users(
    session: SessionDep, principal: BackendApp, topic_id: DbId, body: Subscribe
) -> Changed:
    """Subscribe users (created if unknown) with the channels they get this topic on."""
    n = await service.subscribe(
        session, app_id=principal.app.id, topic_id=topic_id, users=body.users
    )
    return Changed(message="Users subscribed", count=n)


@router.post("/topics/{topic_id}/detachUsers", response_model=Changed)
async def detach_users(
    session: SessionDep, principal: BackendApp, topic_id: DbId, body: Detach
) -> Changed:
    """Unsubscribe users from a topic."""
    n = await service.detach(
        session, app_id=principal.app.id, topic_id=topic_id, identifiers=body.identifiers()
    )
    return Changed(message="Users detached", count=n)


@router.put("/topics/{topic_id}/users/{identifier}", response_model=Changed)
async def set_user_channels(
    session: SessionDep,
    principal: BackendApp,
    topic_id: DbId,
    identifier: Identifier,
    body: Channels,
) -> Changed:
    """Set the channels a subscriber gets this topic on (subscribing them if needed)."""
    await service.set_channels(
        session,
        app_id=principal.app.id,
        topic_id=topic_id,
        identifier=identifier,
        channels=list(body.channels),
    )
    return Changed(message="Channels updated", count=1)
