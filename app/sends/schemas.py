from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.kit.types import Identifier
from app.sends.models import SendStatus

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

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "notification": {"title": "Hello", "message": "Your first notification"},
                    "sendTo": {"recipients": ["alice"]},
                }
            ]
        },
    )

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


class SendHeaders(BaseModel):
    """The send's own header (kit.parts reads it)."""

    model_config = ConfigDict(extra="ignore")

    key: str | None = Field(None, alias="Idempotency-Key", min_length=1, max_length=255)


class SendAccepted(BaseModel):
    requestId: str


class CancelFor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recipients: list[Identifier] = Field(max_length=10_000)


class CancelRun(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"cancellationKey": "order-42"}]}
    )

    cancellationKey: Identifier
    cancelFor: CancelFor | None = None


class Cancelled(BaseModel):
    message: str
    cancelled: int


class RequestStatus(BaseModel):
    requestId: str
    status: SendStatus
    createdAt: str | None
    updatedAt: str | None
    sendAt: str | None
    recipients: int
    topics: list[int]
    delivered: int
    # Deliveries beyond the inbox: channel -> status -> count, e.g. {"email": {"sent": 2}}.
    deliveries: dict[str, dict[str, int]] = Field(default_factory=dict)
    attempts: int
    error: str | None
    cancellationKey: str | None
