import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Notification(Base):
    """One item in one user's inbox."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("request_id", "user_id"),
        # The retention purge walks rows oldest first.
        Index("ix_notifications_created_at", "created_at"),
        # The inbox page and its totalCount: newest first for one user.
        Index(
            "ix_notifications_inbox",
            "user_id",
            text("id DESC"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_notifications_inbox_category",
            "user_id",
            "category_id",
            text("id DESC"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The tenantIdentifier filter: only rows that carry a tenant pay for this index.
        Index(
            "ix_notifications_inbox_tenant",
            "user_id",
            "tenant_identifier",
            text("id DESC"),
            postgresql_where=text("deleted_at IS NULL AND tenant_identifier IS NOT NULL"),
        ),
        # The badge: a small partial index holding only what is still unseen.
        Index(
            "ix_notifications_unseen",
            "user_id",
            postgresql_where=text("deleted_at IS NULL AND seen_at IS NULL AND clicked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Denormalised so backend calls that name only an id stay inside one app.
    app_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    request_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notification_requests.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    icon: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    blocks: Mapped[list[Any] | None] = mapped_column(JSONB)
    category_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("categories.id", ondelete="SET NULL")
    )
    tenant_identifier: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    seen_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    clicked_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    interacted_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))


class InboxCounter(Base):
    """One user's inbox counts, kept exact by triggers on `notifications` (migration 0004).

    Every statement that inserts, updates or deletes inbox rows adjusts these in its own
    transaction, so the inbox page reads its counts in one lookup whatever the inbox size.
    Rows with `deleted_at` set are in no count."""

    __tablename__ = "inbox_counters"
    __table_args__ = ({"postgresql_with": {"fillfactor": "50"}},)

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Neither seen nor clicked: the badge (`unreadCount`).
    unseen: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Not clicked: `filter=unread` (and `filter=read` is total - unclicked).
    unclicked: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    interacted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
