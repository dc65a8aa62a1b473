"""write_sends() plans its statements once per connection

Revision ID: 0016_write_sends_generic
Revises: 0015_write_sends
Create Date: 2026-12-03 03:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_write_sends_generic"
down_revision: str | None = "0015_write_sends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Left to choose (plan_cache_mode auto), PostgreSQL kept planning statements of the function
# on every call, each costed for that call's arrays. A group of one send cost the server
# 0.51 ms of CPU so, 0.66 ms with every plan custom and 0.32 ms with every plan generic; a
# group of 64, 3.26 ms so and 2.61 ms generic (3,000 and 46 calls on the embedded PostgreSQL
# 16). The plans came out the same (auto_explain on PostgreSQL 15, groups of 1 and 8): unnest
# in a nested loop over the users' unique index. Each row is found by a unique key, so a plan
# that does not know the arrays' sizes loses nothing by it. The setting holds inside the
# call only, and so also for the statements of the counters trigger and the foreign-key
# checks it fires.
_SIGNATURE = (
    "write_sends(uuid[], bigint[], text[], integer[], text[], text[], timestamptz[], "
    "bigint[], text[], text, bigint[], text[], uuid[], text[], text[], text[], text[], "
    "text[], text[], text[], timestamptz[], text, text, integer)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {_SIGNATURE} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_SIGNATURE} RESET plan_cache_mode")
