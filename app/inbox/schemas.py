from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.categories.models import Category
from app.categories.schemas import CategoryRef
from app.inbox.models import Notification
from app.kit.timefmt import iso
from app.kit.types import Flag


class NotificationRead(BaseModel):
    """An inbox item, shaped as the Engagespot SDKs read it."""

    id: int
    title: str
    message: str | None
    icon: str | None
    url: str | None
    data: dict[str, Any] | None
    category: CategoryRef | None
    blocks: list[Any]
    createdAt: str | None
    seenAt: str | None
    clickedAt: str | None
    state: str

    @classmethod
    def of(cls, n: Notification, category: Category | None) -> "NotificationRead":
        return cls(
            id=n.id,
            title=n.title,
            message=n.message,
            icon=n.icon,
            url=n.url,
            data=n.data,
            category=CategoryRef(
                id=str(category.id), identifier=category.identifier, name=category.name
            )
            if category is not None
            else None,
            blocks=n.blocks or [],
            createdAt=iso(n.created_at),
            seenAt=iso(n.seen_at),
            clickedAt=iso(n.clicked_at),
            state=state_of(n),
        )


def state_of(n: Notification) -> str:
    if n.state:
        return n.state
    if n.clicked_at is not None:
        return "clicked"
    if n.seen_at is not None:
        return "seen"
    return "unread"


class Pagination(BaseModel):
    totalCount: int
    pageNo: int
    limit: int
    totalPages: int


class InboxPage(BaseModel):
    unreadCount: int
    pagination: Pagination
    data: list[NotificationRead]


InboxFilter = Literal["unread", "read", "interacted"]


class InboxQuery(BaseModel):
    """The inbox page's query string (kit.parts reads it; backends pass userIdentifier)."""

    model_config = ConfigDict(extra="ignore")

    pageNo: int = Field(1, ge=1, le=1_000_000)
    limit: int = Field(15, ge=1, le=100)
    filter: InboxFilter | None = None
    category: str | None = Field(None, max_length=255)
    tenantIdentifier: str | None = Field(None, max_length=255)
    userIdentifier: str | None = Field(None, max_length=255)


class StateChange(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"state": "seen"}]})

    state: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    data: dict[str, Any] | None = None
    delete: Flag = False


class Done(BaseModel):
    statusCode: int = 200
    message: str
