import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DeliveryStatus(StrEnum):
    """Where one delivery stands; all but queued, sending and retrying are final (for the
    engine: a provider's callback may still move a sent one to delivered, undelivered or
    read)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    # Reported by the provider after `sent` (delivery callbacks).
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    READ = "read"

    @property
    def final(self) -> bool:
        return self not in (
            DeliveryStatus.QUEUED,
            DeliveryStatus.SENDING,
            DeliveryStatus.RETRYING,
        )


def _enum(kind: type[StrEnum]) -> Enum:
    return Enum(
        kind, native_enum=False, length=16, values_callable=lambda kinds: [k.value for k in kinds]
    )


class Provider(Base):
    """One configured provider of one channel of an app (e.g. an SMTP relay for email)."""

    __tablename__ = "providers"
    __table_args__ = (
        Index("ix_providers_app_channel", "app_id", "channel", "priority", "id"),
        # One web-push provider per app (its VAPID pair is the app's): made on first use.
        Index(
            "uq_providers_default_webpush",
            "app_id",
            unique=True,
            postgresql_where=text("provider = 'default_webpush'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Non-secret keys in clear; the secret ones (passwords, API keys) sealed in `secrets`.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    secrets: Mapped[str | None] = mapped_column(Text)
    rate_limit: Mapped[float | None] = mapped_column(Float)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    # Shared by every worker: a 429 pauses the provider, and the rate limit hands out slots.
    paused_until: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    next_slot_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )


class DeliveryMessage(Base):
    """What one send says on one channel, rendered once and shared by its deliveries."""

    __tablename__ = "delivery_messages"
    __table_args__ = (UniqueConstraint("request_id", "channel"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notification_requests.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(32))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Provider-level overrides (`override.<providerId>`, `_config` included), sealed.
    overrides: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )


class Delivery(Base):
    """One send to one user on one channel and target, with every attempt it took."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("request_id", "user_id", "channel", "target_key"),
        Index("ix_deliveries_app", "app_id", text("id DESC")),
        Index("ix_deliveries_app_status", "app_id", "status", text("id DESC")),
        Index("ix_deliveries_app_user", "app_id", "user_id", text("id DESC")),
        # Delivery callbacks find their delivery by the provider's message id.
        Index(
            "ix_deliveries_provider_message",
            "provider_id",
            "provider_message_id",
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.id", ondelete="CASCADE"))
    request_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notification_requests.id", ondelete="CASCADE")
    )
    message_ref: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("delivery_messages.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(32))
    # The address (e-mail, URL) from the profile; NULL when the provider's config holds it.
    target: Mapped[str | None] = mapped_column(Text)
    target_key: Mapped[str] = mapped_column(Text, server_default=text("''"))
    # Only providers of this kind may carry the target (an FCM token: `fcm`); NULL: any.
    provider_kind: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    # Fixed at creation, so every retry sends the same message (e-mail Message-ID, webhook-id).
    message_id: Mapped[str] = mapped_column(String(255))
    provider_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("providers.id", ondelete="SET NULL")
    )
    provider: Mapped[str | None] = mapped_column(String(64))
    # How many attempts the current provider has had, for failover.
    provider_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Set while an e-mail's DATA is on the wire: a crash then may or may not have sent it.
    phase: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(Text)
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    slot_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class PhoneOptOut(Base):
    """A phone number that told a provider to stop (Twilio 21610, an inbound STOP): no more
    messages to it on that channel of the app until it opts back in (START)."""

    __tablename__ = "phone_opt_outs"

    app_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Which provider said so, and how (`21610`, `STOP`).
    provider: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
