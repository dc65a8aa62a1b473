from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.delivery.models import Delivery, DeliveryStatus, Provider
from app.kit.timefmt import iso

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ProviderId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# An object only for `json` keys (FCM's SERVICE_ACCOUNT); the catalogue refuses it elsewhere.
ConfigValue = str | int | float | bool | dict[str, Any] | None


class ProviderCreate(BaseModel):
    # The example is for channel `webhook`; each provider's keys are in the README.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"provider": "default_webhook", "name": "Webhooks", "priority": 1, "config": {}}
            ]
        },
    )

    provider: ProviderId
    name: Name | None = None
    config: dict[str, ConfigValue] = Field(default_factory=dict, max_length=50)
    priority: int = Field(default=1, ge=0, le=1_000_000)
    enabled: bool = True
    rateLimit: float | None = Field(default=None, gt=0, le=1_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=1000)


class ProviderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"priority": 2}]})

    name: Name | None = None
    config: dict[str, ConfigValue] | None = Field(default=None, max_length=50)
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    enabled: bool | None = None
    rateLimit: float | None = Field(default=None, gt=0, le=1_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=1000)


class ProviderRead(BaseModel):
    id: int
    channel: str
    provider: str
    name: str
    priority: int
    enabled: bool
    config: dict[str, Any]
    rateLimit: float | None
    concurrency: int | None
    pausedUntil: str | None
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, row: Provider, config: dict[str, Any]) -> "ProviderRead":
        return cls(
            id=row.id,
            channel=row.channel,
            provider=row.provider,
            name=row.name,
            priority=row.priority,
            enabled=row.enabled,
            config=config,
            rateLimit=row.rate_limit,
            concurrency=row.concurrency,
            pausedUntil=iso(row.paused_until),
            createdAt=iso(row.created_at),
            updatedAt=iso(row.updated_at),
        )


class AttemptRead(BaseModel):
    at: str
    provider: str | None
    providerId: int | None
    outcome: str
    error: str | None = None
    statusCode: int | None = None
    durationMs: int | None = None


class DeliveryRead(BaseModel):
    id: int
    requestId: str
    user: str
    channel: str
    target: str | None
    provider: str | None
    providerId: int | None
    status: DeliveryStatus
    attempts: int
    lastError: str | None
    messageId: str
    providerMessageId: str | None
    createdAt: str | None
    updatedAt: str | None
    sentAt: str | None
    nextAttemptAt: str | None
    log: list[AttemptRead]

    @classmethod
    def of(cls, row: Delivery) -> "DeliveryRead":
        return cls(
            id=row.id,
            requestId=str(row.request_id),
            user=row.recipient,
            channel=row.channel,
            # A web-push target holds the subscription's keys: show only where it goes.
            target=row.target_key if row.channel == "webPush" else row.target,
            provider=row.provider,
            providerId=row.provider_id,
            status=row.status,
            attempts=row.attempts,
            lastError=row.last_error,
            messageId=row.message_id,
            providerMessageId=row.provider_message_id,
            createdAt=iso(row.created_at),
            updatedAt=iso(row.updated_at),
            sentAt=iso(row.sent_at),
            nextAttemptAt=iso(row.next_attempt_at) if not row.status.final else None,
            log=[AttemptRead.model_validate(a) for a in row.log],
        )


class DeliveryPage(BaseModel):
    data: list[DeliveryRead]
    # Pass as `before` for the next (older) page; null on the last page.
    nextBefore: int | None
