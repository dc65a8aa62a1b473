"""deliveries.provider_kind: a target only a provider of one kind can carry

Revision ID: 0008_provider_kind
Revises: 0007_deliveries
Create Date: 2026-12-02 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_provider_kind"
down_revision: str | None = "0007_deliveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("provider_kind", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "provider_kind")
