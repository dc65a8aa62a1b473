"""providers per app, deliveries beyond the inbox, addressesFromBackendOnly

Revision ID: 0007_deliveries
Revises: 0006_retention
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_deliveries"
down_revision: str | None = "0006_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.add_column(
        "apps",
        sa.Column(
            "addresses_from_backend_only",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "config", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("paused_until", TS, nullable=True),
        sa.Column("next_slot_at", TS, nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_providers_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_providers"),
    )
    op.create_index(
        "ix_providers_app_channel", "providers", ["app_id", "channel", "priority", "id"]
    )
    op.create_table(
        "delivery_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("content", postgresql.JSONB(), nullable=False),
        sa.Column("overrides", sa.Text(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["notification_requests.id"],
            name="fk_delivery_messages_request_id_notification_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_messages"),
        sa.UniqueConstraint(
            "request_id", "channel", name="uq_delivery_messages_request_id_channel"
        ),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("message_ref", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("target_key", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "status",
            sa.String(16),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("provider_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("phase", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("log", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("slot_at", TS, nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_deliveries_app_id_apps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["notification_requests.id"],
            name="fk_deliveries_request_id_notification_requests",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_ref"],
            ["delivery_messages.id"],
            name="fk_deliveries_message_ref_delivery_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_deliveries_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name="fk_deliveries_provider_id_providers",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint(
            "request_id",
            "user_id",
            "channel",
            "target_key",
            name="uq_deliveries_request_id_user_id_channel_target_key",
        ),
    )
    op.create_index("ix_deliveries_app", "deliveries", ["app_id", sa.text("id DESC")])
    op.create_index(
        "ix_deliveries_app_status", "deliveries", ["app_id", "status", sa.text("id DESC")]
    )
    op.create_index(
        "ix_deliveries_app_user", "deliveries", ["app_id", "user_id", sa.text("id DESC")]
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("delivery_messages")
    op.drop_index("ix_providers_app_channel", table_name="providers")
    op.drop_table("providers")
    op.drop_column("apps", "addresses_from_backend_only")
