"""The statements of a purge: each picks at most `limit` rows, oldest first.

Picks skip rows another transaction holds (SKIP LOCKED): a purge never waits on an inbox
that is being read or marked; what it skipped goes in the next run."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# Only requests that can no longer change are purged (not queued, scheduled or fanning out).
FINAL = ("done", "cancelled", "failed")
# pg_advisory_lock key of "the purge", on a session of its own: one purge at a time across
# every process on the database.
LOCK_KEY = 0x6865_7261_6C64_7072

_NOW_MINUS = text("SELECT now() - CAST(:span AS interval)")
_ROWS_OF_REQUESTS = text(
    """
    SELECT id FROM notifications
     WHERE request_id = ANY(:requests)
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
    """
)
_DELETE_NOTIFICATIONS = text("DELETE FROM notifications WHERE id = ANY(:ids)")
_OLD_REQUESTS = text(
    """
    SELECT id FROM notification_requests
     WHERE created_at < :before AND status = ANY(:final)
     ORDER BY created_at
     LIMIT :limit
    """
)
_DELETE_REQUESTS = text(
    "DELETE FROM notification_requests WHERE id = ANY(:ids) AND status = ANY(:final)"
)
# Each batch is a MATERIALIZED CTE: as a plain subquery the planner may run it again per
# joined row, and with SKIP LOCKED each run can pick other rows, so a batch could delete
# more than :limit (as inbox_repository.purge once did).
_DELETE_KEYS = text(
    """
    WITH batch AS MATERIALIZED (
           SELECT app_id, key FROM idempotency_keys
            WHERE created_at < :before
            ORDER BY created_at
            LIMIT :limit
              FOR UPDATE SKIP LOCKED)
    DELETE FROM idempotency_keys WHERE (app_id, key) IN (SELECT app_id, key FROM batch)
    """
)
# A log row of a job still in the queue table describes unfinished work: it stays.
_DELETE_QUEUE_LOG = text(
    """
    WITH batch AS MATERIALIZED (
           SELECT l.id FROM pgqueuer_log l
            WHERE l.created < :before
              AND NOT EXISTS (SELECT 1 FROM pgqueuer q WHERE q.id = l.job_id)
            ORDER BY l.created
            LIMIT :limit
              FOR UPDATE OF l SKIP LOCKED)
    DELETE FROM pgqueuer_log WHERE id IN (SELECT id FROM batch)
    """
)
_DELETE_QUEUE_STATISTICS = text(
    """
    WITH batch AS MATERIALIZED (
           SELECT id FROM pgqueuer_statistics
            WHERE created < :before
            ORDER BY id
            LIMIT :limit
              FOR UPDATE SKIP LOCKED)
    DELETE FROM pgqueuer_statistics WHERE id IN (SELECT id FROM batch)
    """
)
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_LOCK = text("SELECT pg_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


async def ago(session: AsyncSession, span: timedelta) -> datetime:
    """The database clock's now, less `span`."""
    cut: datetime = (await session.execute(_NOW_MINUS, {"span": span})).scalar_one()
    return cut


async def rows_of_requests(
    session: AsyncSession, requests: Sequence[uuid.UUID], *, limit: int
) -> list[int]:
    result = await session.execute(_ROWS_OF_REQUESTS, {"requests": requests, "limit": limit})
    return [i for (i,) in result]


async def delete_notifications(session: AsyncSession, ids: Sequence[int]) -> int:
    """Delete inbox rows by id (the per-user counters follow by trigger)."""
    return await _count(session, _DELETE_NOTIFICATIONS, {"ids": ids})


async def old_requests(session: AsyncSession, *, before: datetime, limit: int) -> list[uuid.UUID]:
    params = {"before": before, "limit": limit, "final": list(FINAL)}
    result = await session.execute(_OLD_REQUESTS, params)
    return [i for (i,) in result]


async def delete_requests(session: AsyncSession, ids: Sequence[uuid.UUID]) -> int:
    return await _count(session, _DELETE_REQUESTS, {"ids": ids, "final": list(FINAL)})


async def delete_idempotency_keys(session: AsyncSession, *, before: datetime, limit: int) -> int:
    return await _count(session, _DELETE_KEYS, {"before": before, "limit": limit})


async def delete_queue_log(session: AsyncSession, *, before: datetime, limit: int) -> int:
    return await _count(session, _DELETE_QUEUE_LOG, {"before": before, "limit": limit})


async def delete_queue_statistics(session: AsyncSession, *, before: datetime, limit: int) -> int:
    return await _count(session, _DELETE_QUEUE_STATISTICS, {"before": before, "limit": limit})


async def try_lock(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(_TRY_LOCK, {"key": LOCK_KEY}))


async def lock(conn: AsyncConnection) -> None:
    await conn.execute(_LOCK, {"key": LOCK_KEY})


async def unlock(conn: AsyncConnection) -> None:
    await conn.execute(_UNLOCK, {"key": LOCK_KEY})


async def _count(session: AsyncSession, statement: TextClause, params: dict[str, object]) -> int:
    result = await session.execute(statement, params)
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
