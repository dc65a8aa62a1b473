from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.kit.timefmt import iso
from app.topics.models import Topic

IDENTIFIER_PATTERN = r"^\S+$"  # whatever @engagespot/node derives from a name
TopicIdentifier = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=IDENTIFIER_PATTERN)
]
# Stripped, so a name of spaces is refused instead of deriving an empty identifier.
TopicName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
UserIdentifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class TopicCreate(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"name": "Release notes"}]}
    )

    name: TopicName
    identifier: TopicIdentifier | None = None


class TopicUpdate(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"name": "Product updates"}]}
    )

    name: TopicName


class TopicRead(BaseModel):
    id: int
    name: str
    identifier: str
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, topic: Topic) -> "TopicRead":
        return cls(
            id=topic.id,
            name=topic.name,
            identifier=topic.identifier,
            createdAt=iso(topic.created_at),
            updatedAt=iso(topic.updated_at),
        )


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="ignore")

    identifier: UserIdentifier
    channels: list[ChannelName] = Field(default_factory=list, max_length=20)


class Subscribe(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"users": [{"identifier": "alice", "channels": ["inApp", "email"]}]}]
        },
    )

    users: list[Subscriber] = Field(min_length=1, max_length=10_000)


class Detach(BaseModel):
    """`@engagespot/node` sends identifiers; objects with `identifier` are accepted too."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"users": ["alice"]}]}
    )

    users: list[UserIdentifier | Subscriber] = Field(min_length=1, max_length=10_000)

    def identifiers(self) -> list[str]:
        return [u.identifier if isinstance(u, Subscriber) else u for u in self.users]


class Channels(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"channels": ["inApp", "email"]}]}
    )

    channels: list[ChannelName] = Field(max_length=20)


class SubscriptionRead(BaseModel):
    topic: TopicRead
    channels: list[str]
    createdAt: str | None


class Changed(BaseModel):
    message: str
    count: int
