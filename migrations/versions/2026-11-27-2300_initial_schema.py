"""initial schema

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27 23:18:34.765391+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("api_secret", sa.String(length=128), nullable=False),
        sa.Column("secure_mode", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("hmac_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("signing_public_key", sa.Text(), nullable=True),
        sa.Column("vapid_public_key", sa.Text(), nullable=False),
        sa.Column("vapid_private_key", sa.Text(), nullable=False),
        sa.Column(
            "channels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[\"inApp\"]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("api_key", name=op.f("uq_apps_api_key")),
    )
    op.create_table(
        "categories",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hide_in_in_app", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "hide_in_preference_manager",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_categories_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("app_id", "identifier", name=op.f("uq_categories_app_id_identifier")),
    )
    op.create_table(
        "notification_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("recipient_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_notification_requests_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_requests")),
    )
    op.create_index(
        op.f("ix_notification_requests_app_id"), "notification_requests", ["app_id"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column(
            "profile",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_users_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("app_id", "identifier", name=op.f("uq_users_app_id_identifier")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("device_identifier", sa.String(length=255), nullable=False),
        sa.Column("device_type", sa.String(length=32), nullable=True),
        sa.Column("browser_type", sa.String(length=32), nullable=True),
        sa.Column("web_push_subscription", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint(
            "user_id", "device_identifier", name=op.f("uq_devices_user_id_device_identifier")
        ),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("icon", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("blocks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("category_id", sa.BigInteger(), nullable=True),
        sa.Column("tenant_identifier", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("seen_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("clicked_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("interacted_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("deleted_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_notifications_category_id_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["notification_requests.id"],
            name=op.f("fk_notifications_request_id_notification_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "request_id", "user_id", name=op.f("uq_notifications_request_id_user_id")
        ),
    )
    op.create_index(
        "ix_notifications_inbox",
        "notifications",
        ["user_id", sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_notifications_inbox_category",
        "notifications",
        ["user_id", "category_id", sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_notifications_unseen",
        "notifications",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL AND seen_at IS NULL AND clicked_at IS NULL"),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("category_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_preferences_category_id_categories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "category_id", "channel", name=op.f("pk_preferences")),
    )
    op.create_index(
        op.f("ix_preferences_category_id"), "preferences", ["category_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_preferences_category_id"), table_name="preferences")
    op.drop_table("preferences")
    op.drop_index(
        "ix_notifications_unseen",
        table_name="notifications",
        postgresql_where=sa.text("deleted_at IS NULL AND seen_at IS NULL AND clicked_at IS NULL"),
    )
    op.drop_index(
        "ix_notifications_inbox_category",
        table_name="notifications",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_notifications_inbox",
        table_name="notifications",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("notifications")
    op.drop_table("devices")
    op.drop_table("users")
    op.drop_index(op.f("ix_notification_requests_app_id"), table_name="notification_requests")
    op.drop_table("notification_requests")
    op.drop_table("categories")
    op.drop_table("apps")
