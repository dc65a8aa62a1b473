"""admin token shared by replicas (its SHA-256 digest)

Revision ID: 0004_admin_token
Revises: 0003_inbox_count
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_admin_token"
down_revision: str | None = "0003_inbox_count"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_admin_tokens_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
    )


def downgrade() -> None:
    op.drop_table("admin_tokens")
