"""notify every process when an app changes, so per-process app caches stay correct

Revision ID: 0010_apps_changed
Revises: 0009_inbox_counters
Create Date: 2026-12-01 22:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_apps_changed"
down_revision: str | None = "0009_inbox_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A trigger, not application code: a rotation from any code path, the CLI or plain SQL
# reaches every replica's cache (app/apps/cache.py) on commit.
def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION apps_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('herald_apps', OLD.api_key);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER apps_changed AFTER UPDATE OR DELETE ON apps "
        "FOR EACH ROW EXECUTE FUNCTION apps_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS apps_changed ON apps")
    op.execute("DROP FUNCTION IF EXISTS apps_changed()")
