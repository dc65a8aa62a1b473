"""inbox count index and eager autovacuum on notifications

Revision ID: 0003_inbox_count
Revises: 0002_topics_queue
Create Date: 2026-11-28 00:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_inbox_count"
down_revision: str | None = "0002_topics_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Inserts leave pages out of the visibility map until a vacuum; index-only counts then
    # read the heap. Vacuum after 1 % new rows instead of PostgreSQL's default 20 %.
    op.execute(
        "ALTER TABLE notifications SET (autovacuum_vacuum_insert_scale_factor = 0.01, "
        "autovacuum_vacuum_scale_factor = 0.02)"
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_notifications_user",
            "notifications",
            ["user_id"],
            postgresql_where=sa.text("deleted_at IS NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_notifications_user",
            table_name="notifications",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.execute(
        "ALTER TABLE notifications RESET (autovacuum_vacuum_insert_scale_factor, "
        "autovacuum_vacuum_scale_factor)"
    )
