"""previous API secret, accepted during the rotation grace period

Revision ID: 0005_previous_secret
Revises: 0004_admin_token
Create Date: 2026-12-01 22:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_previous_secret"
down_revision: str | None = "0004_admin_token"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("apps", sa.Column("previous_api_secret", sa.String(length=128), nullable=True))
    op.add_column(
        "apps",
        sa.Column("previous_secret_expires_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("apps", "previous_secret_expires_at")
    op.drop_column("apps", "previous_api_secret")
