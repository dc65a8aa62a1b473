"""phone_opt_outs (numbers that said STOP), and the index delivery callbacks look up by

Revision ID: 0012_sms
Revises: 0011_drop_inbox_user_index
Create Date: 2026-12-02 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_sms"
down_revision: str | None = "0011_drop_inbox_user_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_opt_outs",
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_phone_opt_outs_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "channel", "phone", name="pk_phone_opt_outs"),
    )
    # deliveries may be large: the index is built without blocking sends.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_deliveries_provider_message",
            "deliveries",
            ["provider_id", "provider_message_id"],
            postgresql_where=sa.text("provider_message_id IS NOT NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_deliveries_provider_message",
            table_name="deliveries",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("phone_opt_outs")
