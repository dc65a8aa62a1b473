"""drop ix_notifications_user: totalCount comes from the counters now

Revision ID: 0011_drop_inbox_user_index
Revises: 0010_apps_changed
Create Date: 2026-12-01 23:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_drop_inbox_user_index"
down_revision: str | None = "0010_apps_changed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Only the count(*) for totalCount read it; every send, fan-out row and import paid for it.
def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_notifications_user",
            table_name="notifications",
            postgresql_concurrently=True,
            if_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_notifications_user",
            "notifications",
            ["user_id"],
            postgresql_where=sa.text("deleted_at IS NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )
