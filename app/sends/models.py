import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class SendStatus(StrEnum):
    """Where a send stands; the last three are final."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    FANNING_OUT = "fanning_out"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def pending(self) -> bool:
        return self in (SendStatus.QUEUED, SendStatus.SCHEDULED, SendStatus.FANNING_OUT)


class NotificationRequest(Base):
    """A send as the client made it, kept whole."""

    __tablename__ = "notification_requests"
    __table_args__ = (
        Index(
            "ix_notification_requests_cancellation",
            "app_id",
            "cancellation_key",
            postgresql_where=text("cancellation_key IS NOT NULL"),
        ),
        # The retention purge walks requests oldest first.
        Index("ix_notification_requests_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    app_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("apps.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    recipient_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[SendStatus] = mapped_column(
        Enum(
            SendStatus,
            native_enum=False,
            length=16,
            values_callable=lambda kinds: [k.value for k in kinds],
        ),
        server_default=text("'done'"),
    )
    send_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    # Resolved explicit recipients the worker still has to reach (topics are read live).
    user_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )
    topic_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )
    # Fan-out resumes after this user id: a killed worker neither skips nor repeats.
    cursor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    category_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("categories.id", ondelete="SET NULL")
    )
    cancellation_key: Mapped[str | None] = mapped_column(String(255))
    workflow_identifier: Mapped[str | None] = mapped_column(String(255))
    cancelled_user_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )


class IdempotencyKey(Base):
    """The first successful answer to a send with an `Idempotency-Key`, kept 24 h."""

    __tablename__ = "idempotency_keys"

    app_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now(), index=True
    )
