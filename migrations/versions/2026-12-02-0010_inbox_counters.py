"""per-user inbox counters kept by triggers; an index for the tenant filter

Revision ID: 0009_inbox_counters
Revises: 0008_provider_kind
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_inbox_counters"
down_revision: str | None = "0008_provider_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level triggers see every row a statement changed at once (transition tables), so
# one send, one fan-out batch, one mark-all or one purge batch costs one counter write per
# user, in the same transaction as the rows. Counter rows are always locked in user-id order
# (an ordered upsert; an ordered loop of updates, which never inserts, so a user deleted by a
# cascade cannot trip the foreign key), so two statements touching overlapping users cannot
# deadlock on them. Rows deleted with
# `deleted_at` are out of every count; a statement that changes no counted fact (a `data`
# merge, a second click) writes nothing. A row counts in `total`; in `unseen` when neither
# seen nor clicked; in `unclicked` when not clicked; in `interacted` when interacted with.
_FUNCTION = """
CREATE FUNCTION inbox_counters_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO inbox_counters AS c (user_id, total, unseen, unclicked, interacted)
        SELECT user_id, sum(t), sum(s), sum(k), sum(i)
        FROM (
            SELECT user_id, 1, (seen_at IS NULL AND clicked_at IS NULL)::int,
                   (clicked_at IS NULL)::int, (interacted_at IS NOT NULL)::int
            FROM new_rows WHERE deleted_at IS NULL
        ) AS r(user_id, t, s, k, i)
        GROUP BY user_id
        ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE
            SET total = c.total + excluded.total,
                unseen = c.unseen + excluded.unseen,
                unclicked = c.unclicked + excluded.unclicked,
                interacted = c.interacted + excluded.interacted;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        FOR d IN
            SELECT user_id, sum(t) AS t, sum(s) AS s, sum(k) AS k, sum(i) AS i
            FROM (
                SELECT user_id, 1, (seen_at IS NULL AND clicked_at IS NULL)::int,
                       (clicked_at IS NULL)::int, (interacted_at IS NOT NULL)::int
                FROM new_rows WHERE deleted_at IS NULL
                UNION ALL
                SELECT user_id, -1,
                       -(seen_at IS NULL AND clicked_at IS NULL)::int,
                       -(clicked_at IS NULL)::int,
                       -(interacted_at IS NOT NULL)::int
                FROM old_rows WHERE deleted_at IS NULL
            ) AS r(user_id, t, s, k, i)
            GROUP BY user_id
            HAVING sum(t) <> 0 OR sum(s) <> 0 OR sum(k) <> 0 OR sum(i) <> 0
            ORDER BY user_id
        LOOP
            UPDATE inbox_counters
            SET total = total + d.t, unseen = unseen + d.s,
                unclicked = unclicked + d.k, interacted = interacted + d.i
            WHERE user_id = d.user_id;
        END LOOP;
    ELSE
        FOR d IN
            SELECT user_id, count(*) AS t,
                   count(*) FILTER (WHERE seen_at IS NULL AND clicked_at IS NULL) AS s,
                   count(*) FILTER (WHERE clicked_at IS NULL) AS k,
                   count(*) FILTER (WHERE interacted_at IS NOT NULL) AS i
            FROM old_rows WHERE deleted_at IS NULL
            GROUP BY user_id
            ORDER BY user_id
        LOOP
            UPDATE inbox_counters
            SET total = total - d.t, unseen = unseen - d.s,
                unclicked = unclicked - d.k, interacted = interacted - d.i
            WHERE user_id = d.user_id;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER inbox_counters_insert AFTER INSERT ON notifications "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION inbox_counters_apply()",
    "CREATE TRIGGER inbox_counters_update AFTER UPDATE ON notifications "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION inbox_counters_apply()",
    "CREATE TRIGGER inbox_counters_delete AFTER DELETE ON notifications "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION inbox_counters_apply()",
)

_BACKFILL = """
INSERT INTO inbox_counters (user_id, total, unseen, unclicked, interacted)
SELECT user_id, count(*),
       count(*) FILTER (WHERE seen_at IS NULL AND clicked_at IS NULL),
       count(*) FILTER (WHERE clicked_at IS NULL),
       count(*) FILTER (WHERE interacted_at IS NOT NULL)
FROM notifications WHERE deleted_at IS NULL
GROUP BY user_id ORDER BY user_id
"""


def upgrade() -> None:
    op.create_table(
        "inbox_counters",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unseen", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("unclicked", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("interacted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_inbox_counters_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_inbox_counters")),
        # Every write to a counter is an update of a row: room on its page keeps it HOT.
        postgresql_with={"fillfactor": "50"},
    )
    op.execute(_FUNCTION)
    # Writers wait while the existing rows are counted, so none is counted twice or missed.
    op.execute("LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE")
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(_BACKFILL)
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_notifications_inbox_tenant",
            "notifications",
            ["user_id", "tenant_identifier", sa.text("id DESC")],
            postgresql_where=sa.text("deleted_at IS NULL AND tenant_identifier IS NOT NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_notifications_inbox_tenant",
            table_name="notifications",
            postgresql_concurrently=True,
            if_exists=True,
        )
    for name in ("inbox_counters_insert", "inbox_counters_update", "inbox_counters_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON notifications")
    op.execute("DROP FUNCTION IF EXISTS inbox_counters_apply()")
    op.drop_table("inbox_counters")
