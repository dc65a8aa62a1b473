"""Retention: delete what the settings no longer keep, a bounded batch per transaction.

The rule: an inbox row goes once it is older than HERALD_RETENTION_DAYS. A send request
goes, with its payload and every inbox row it made, once it is older than
HERALD_REQUEST_RETENTION_DAYS and finished (done, cancelled or failed); a shorter request
retention therefore shortens the inbox too. Finished queue log and statistics rows follow
the request retention; idempotency keys go when they expire (24 h). 0 days keeps forever."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.inbox import repository as inbox_repository
from app.retention import repository
from app.sends.idempotency import TTL as IDEMPOTENCY_TTL

BATCH = 5_000
TABLES = (
    "notifications",
    "notification_requests",
    "idempotency_keys",
    "pgqueuer_log",
    "pgqueuer_statistics",
)
# table, rows deleted from it so far in this run, whether it is finished
Progress = Callable[[str, int, bool], None]
Maker = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Policy:
    inbox_days: int  # 0: keep forever
    request_days: int  # 0: keep forever
    schedule: str = ""  # cron of the periodic purge; "": none
    batch: int = BATCH
    # After each batch, sleep this many times as long as it took (0: at once).
    pause: float = 0.0

    @classmethod
    def of(cls, settings: Settings) -> "Policy":
        request_days = settings.request_retention_days
        return cls(
            inbox_days=settings.retention_days,
            request_days=settings.retention_days if request_days is None else request_days,
            schedule=settings.retention_schedule,
        )


async def purge(
    maker: Maker,
    policy: Policy,
    *,
    wait: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> dict[str, int] | None:
    """Run one purge; return the rows deleted per table.

    One purge runs at a time on a database. When another holds the lock, return None at
    once, or with `wait` wait for it to end and then run."""
    async with maker() as holder:
        # The lock lives on a session that holds no transaction open while batches run.
        conn = await holder.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if not await repository.try_lock(conn):
            if not wait:
                return None
            if on_wait is not None:
                on_wait()
            await repository.lock(conn)
        try:
            run = _Run(maker, policy, progress, stopping)
            await run.all()
            return run.counts
        finally:
            await repository.unlock(conn)


class _Run:
    def __init__(
        self,
        maker: Maker,
        policy: Policy,
        progress: Progress | None,
        stopping: Callable[[], bool] | None,
    ):
        self.maker = maker
        self.policy = policy
        self.batch = policy.batch
        self.progress = progress
        self.stopping = stopping or (lambda: False)
        self.counts = dict.fromkeys(TABLES, 0)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        started = time.monotonic()
        async with self.maker.begin() as session:
            yield session
        if self.policy.pause > 0:
            # A duty cycle: between batches the database serves the inbox alone.
            await asyncio.sleep((time.monotonic() - started) * self.policy.pause)

    def _add(self, table: str, rows: int) -> None:
        self.counts[table] += rows
        if self.progress is not None:
            self.progress(table, self.counts[table], False)

    def _finished(self, table: str) -> None:
        if self.progress is not None:
            self.progress(table, self.counts[table], True)

    async def all(self) -> None:
        policy = self.policy
        async with self.maker() as session:
            # Cut-offs on the database's clock, fixed for the whole run.
            inbox = await _ago(session, policy.inbox_days)
            requests = await _ago(session, policy.request_days)
            keys = await repository.ago(session, IDEMPOTENCY_TTL)
        if inbox is not None:
            await self._inbox(inbox)
        if requests is not None:
            await self._requests(requests)
        self._finished("notifications")
        self._finished("notification_requests")
        await self._simple("idempotency_keys", repository.delete_idempotency_keys, keys)
        if requests is not None:
            await self._simple("pgqueuer_log", repository.delete_queue_log, requests)
            await self._simple("pgqueuer_statistics", repository.delete_queue_statistics, requests)
        else:
            self._finished("pgqueuer_log")
            self._finished("pgqueuer_statistics")

    async def _inbox(self, before: datetime) -> None:
        while not self.stopping():
            async with self._transaction() as session:
                deleted = await inbox_repository.purge(
                    session, created_before=before, limit=self.batch
                )
            self._add("notifications", deleted)
            if deleted < self.batch:
                return

    async def _requests(self, before: datetime) -> None:
        while not self.stopping():
            async with self.maker() as session:
                chosen = await repository.old_requests(session, before=before, limit=self.batch)
            if not chosen:
                return
            # Their inbox rows first, in batches of their own: one request may have made an
            # inbox row for each of a million users.
            while not self.stopping():
                async with self._transaction() as session:
                    ids = await repository.rows_of_requests(session, chosen, limit=self.batch)
                    deleted = await repository.delete_notifications(session, ids) if ids else 0
                self._add("notifications", deleted)
                if len(ids) < self.batch:
                    break
            if self.stopping():
                return
            async with self._transaction() as session:
                deleted = await repository.delete_requests(session, chosen)
            self._add("notification_requests", deleted)
            if len(chosen) < self.batch:
                return

    async def _simple(
        self,
        table: str,
        delete: Callable[..., Awaitable[int]],
        before: datetime,
    ) -> None:
        while not self.stopping():
            async with self._transaction() as session:
                deleted = await delete(session, before=before, limit=self.batch)
            self._add(table, deleted)
            if deleted < self.batch:
                break
        self._finished(table)


async def _ago(session: AsyncSession, days: int) -> datetime | None:
    return await repository.ago(session, timedelta(days=days)) if days > 0 else None
