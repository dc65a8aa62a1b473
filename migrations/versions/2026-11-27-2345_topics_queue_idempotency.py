"""topics queue idempotency

Revision ID: 0002_topics_queue
Revises: 0001_initial
Create Date: 2026-11-27 23:30:48.521560+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

revision: str = "0002_topics_queue"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_script(sql: str) -> None:
    # PgQueuer's DDL is a multi-statement script (with function bodies): send it through
    # asyncpg's simple-query path rather than as one prepared statement.
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    await_only(raw.execute(sql))


def upgrade() -> None:
    _run_script(QueryBuilderEnvironment().build_install_query(create_schema=False))
    op.create_table(
        "idempotency_keys",
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_idempotency_keys_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "topics",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
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
            ["app_id"], ["apps.id"], name=op.f("fk_topics_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("app_id", "identifier", name=op.f("uq_topics_app_id_identifier")),
    )
    op.create_table(
        "topic_subscriptions",
        sa.Column("topic_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "channels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_topic_subscriptions_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_topic_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("topic_id", "user_id", name=op.f("pk_topic_subscriptions")),
    )
    op.create_index(
        op.f("ix_topic_subscriptions_user_id"), "topic_subscriptions", ["user_id"], unique=False
    )
    op.add_column(
        "notification_requests",
        sa.Column("status", sa.String(length=16), server_default=sa.text("'done'"), nullable=False),
    )
    op.add_column(
        "notification_requests",
        sa.Column("send_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column(
        "notification_requests",
        sa.Column(
            "user_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
    )
    op.add_column(
        "notification_requests",
        sa.Column(
            "topic_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
    )
    op.add_column(
        "notification_requests",
        sa.Column("cursor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "notification_requests", sa.Column("cancellation_key", sa.String(length=255), nullable=True)
    )
    op.add_column("notification_requests", sa.Column("category_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_notification_requests_category_id_categories"),
        "notification_requests",
        "categories",
        ["category_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column(
        "notification_requests",
        sa.Column("workflow_identifier", sa.String(length=255), nullable=True),
    )
    op.add_column(
        "notification_requests",
        sa.Column(
            "cancelled_user_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
    )
    op.add_column(
        "notification_requests",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("notification_requests", sa.Column("error", sa.Text(), nullable=True))
    op.add_column(
        "notification_requests",
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_notification_requests_cancellation",
        "notification_requests",
        ["app_id", "cancellation_key"],
        unique=False,
        postgresql_where=sa.text("cancellation_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notification_requests_cancellation",
        table_name="notification_requests",
        postgresql_where=sa.text("cancellation_key IS NOT NULL"),
    )
    op.drop_column("notification_requests", "updated_at")
    op.drop_column("notification_requests", "error")
    op.drop_column("notification_requests", "attempts")
    op.drop_column("notification_requests", "cancelled_user_ids")
    op.drop_column("notification_requests", "workflow_identifier")
    op.drop_constraint(
        op.f("fk_notification_requests_category_id_categories"),
        "notification_requests",
        type_="foreignkey",
    )
    op.drop_column("notification_requests", "category_id")
    op.drop_column("notification_requests", "cancellation_key")
    op.drop_column("notification_requests", "cursor")
    op.drop_column("notification_requests", "topic_ids")
    op.drop_column("notification_requests", "user_ids")
    op.drop_column("notification_requests", "send_at")
    op.drop_column("notification_requests", "status")
    op.drop_index(op.f("ix_topic_subscriptions_user_id"), table_name="topic_subscriptions")
    op.drop_table("topic_subscriptions")
    op.drop_table("topics")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    _run_script(QueryBuilderEnvironment().build_uninstall_query())
