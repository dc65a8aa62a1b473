from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.categories.models import Category
from app.categories.schemas import CategoryRef
from app.kit.timefmt import iso
from app.notifications.models import Notification

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(max_length=10_000)]


class InlineRecipient(BaseModel):
    """A recipient given as an object: its other keys are profile attributes to upsert."""

    model_config = ConfigDict(extra="allow")

    identifier: Identifier


Recipient = Identifier | InlineRecipient


class SendTo(BaseModel):
    model_config = ConfigDict(extra="allow")

    recipients: list[Recipient] = Field(default_factory=list)
    topics: list[Identifier] = Field(default_factory=list)


class Workflow(BaseModel):
    model_config = ConfigDict(extra="allow")

    identifier: Identifier | None = None
    cancellationKey: Identifier | None = None


class NotificationContent(BaseModel):
    model_config = ConfigDict(extra="allow")

    title: Text | None = None
    message: Text | None = None
    url: Text | None = None
    icon: Text | None = None
    templateId: int | str | None = None
    templateIdentifier: Identifier | None = None
    category: Identifier | None = None
    tenantIdentifier: Identifier | None = None
    data: dict[str, Any] | None = None
    blocks: list[dict[str, Any]] | None = None
    workflow: Workflow | None = None


class Override(BaseModel):
    model_config = ConfigDict(extra="allow")

    channels: list[Identifier] | None = None


class SendRequest(BaseModel):
    """The body of POST /v3/notifications, in every variant the official clients send."""

    model_config = ConfigDict(extra="allow")

    notification: NotificationContent
    sendTo: SendTo | None = None
    recipients: list[Recipient] | None = Field(
        default=None, description="Deprecated: use sendTo.recipients"
    )
    category: Identifier | None = None
    tenantIdentifier: Identifier | None = None
    data: dict[str, Any] | None = None
    sendAt: datetime | None = None
    override: Override | None = None


class SendAccepted(BaseModel):
    requestId: str


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


class StateChange(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    data: dict[str, Any] | None = None
    delete: bool = False


class Done(BaseModel):
    statusCode: int = 200
    message: str


class CancelFor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recipients: list[Identifier] = Field(max_length=10_000)


class CancelRun(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cancellationKey: Identifier
    cancelFor: CancelFor | None = None


class Cancelled(BaseModel):
    message: str
    cancelled: int


class RequestStatus(BaseModel):
    requestId: str
    status: str
    createdAt: str | None
    updatedAt: str | None
    sendAt: str | None
    recipients: int
    topics: list[int]
    delivered: int
    attempts: int
    error: str | None
    cancellationKey: str | None
