"""created_at indexes for the retention purge

Revision ID: 0006_retention
Revises: 0005_previous_secret
Create Date: 2026-11-28 03:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_retention"
down_revision: str | None = "0005_previous_secret"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The purge deletes oldest first, a batch at a time: without these it would scan the table
# for every batch.
INDEXES = (
    ("ix_notifications_created_at", "notifications"),
    ("ix_notification_requests_created_at", "notification_requests"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in INDEXES:
            op.create_index(
                name, table, ["created_at"], postgresql_concurrently=True, if_not_exists=True
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
