"""providers: at most one default_webpush per app (made on first use)

Revision ID: 0013_webpush
Revises: 0012_sms
Create Date: 2026-12-03 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_webpush"
down_revision: str | None = "0012_sms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The providers table holds a few rows per app: no need for CONCURRENTLY.
    op.create_index(
        "uq_providers_default_webpush",
        "providers",
        ["app_id"],
        unique=True,
        postgresql_where=sa.text("provider = 'default_webpush'"),
    )


def downgrade() -> None:
    op.drop_index("uq_providers_default_webpush", table_name="providers")
