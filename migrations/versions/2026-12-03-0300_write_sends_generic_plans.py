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

# Left to choose, PostgreSQL planned the function's statements afresh on every call: costed
# for the array sizes of each call, a custom plan always looked cheaper than the generic one
# costed for arrays of unknown size. The plans are the same either way (unnest joined to the
# users' unique index), so planning each call was waste: 0.19 ms of the server's 0.51 ms for
# a group of one send, 0.65 of 3.26 ms for a group of 64 (20,000 calls on the embedded
# PostgreSQL 16). The setting holds inside the call only, and so also for the statements of
# the counters trigger and the foreign-key checks it fires.
_SIGNATURE = (
    "write_sends(uuid[], bigint[], text[], integer[], text[], text[], timestamptz[], "
    "bigint[], text[], text, bigint[], text[], uuid[], text[], text[], text[], text[], "
    "text[], text[], text[], timestamptz[], text, text, integer)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {_SIGNATURE} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_SIGNATURE} RESET plan_cache_mode")
