"""The purge: what goes, what stays, 0 = forever, bounded batches, one purge at a time."""

import asyncio
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.retention import repository, service
from app.retention.service import Policy
from tests.retention import seed
from tests.retention.seed import DAY

Maker = async_sessionmaker[AsyncSession]
HOUR = timedelta(hours=1)


async def test_older_rows_go_younger_rows_stay(maker: Maker, retention_engine: AsyncEngine) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 3)
    old, old_rows = await seed.sent(engine, app, users, age=100 * DAY)
    # Scheduled 100 days ago, delivered 80 days ago: its rows go with the request.
    late = await seed.request(engine, app, age=100 * DAY)
    late_rows = await seed.inbox_rows(engine, app, late, users[:2], age=80 * DAY)
    young, young_rows = await seed.sent(engine, app, users, age=80 * DAY)
    # Not finished: kept however old.
    waiting = await seed.request(engine, app, age=100 * DAY, status="scheduled")
    await seed.idempotency_key(engine, app, "expired", age=25 * HOUR)
    await seed.idempotency_key(engine, app, "fresh", age=23 * HOUR)
    still_queued = await seed.queued_job(engine)
    finished_log = await seed.log_row(engine, 424242, age=100 * DAY)
    unfinished_log = await seed.log_row(engine, still_queued, age=100 * DAY)
    recent_log = await seed.log_row(engine, 434343, age=80 * DAY)
    old_stat = await seed.statistic(engine, age=100 * DAY)
    recent_stat = await seed.statistic(engine, age=80 * DAY)

    deleted = await service.purge(maker, Policy(inbox_days=90, request_days=90))

    assert deleted == {
        "notifications": 5,
        "notification_requests": 2,
        "idempotency_keys": 1,
        "pgqueuer_log": 1,
        "pgqueuer_statistics": 1,
    }
    everything = old_rows | late_rows | young_rows
    assert await seed.present(engine, "notifications", "id", everything) == young_rows
    requests = {old, late, young, waiting}
    assert await seed.present(engine, "notification_requests", "id", requests) == {
        young,
        waiting,
    }
    assert await seed.present(engine, "idempotency_keys", "key", ["expired", "fresh"]) == {"fresh"}
    logs = {finished_log, unfinished_log, recent_log}
    assert await seed.present(engine, "pgqueuer_log", "id", logs) == {unfinished_log, recent_log}
    stats = {old_stat, recent_stat}
    assert await seed.present(engine, "pgqueuer_statistics", "id", stats) == {recent_stat}

    # Nothing is left to do: a second run deletes nothing.
    again = await service.purge(maker, Policy(inbox_days=90, request_days=90))
    assert again == dict.fromkeys(service.TABLES, 0)


async def test_a_shorter_request_retention_takes_the_rows_along(
    maker: Maker, retention_engine: AsyncEngine
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 2)
    month, month_rows = await seed.sent(engine, app, users, age=40 * DAY)
    week, week_rows = await seed.sent(engine, app, users, age=7 * DAY)
    log = await seed.log_row(engine, 1, age=40 * DAY)

    deleted = await service.purge(maker, Policy(inbox_days=90, request_days=30))

    assert deleted is not None
    assert (deleted["notifications"], deleted["notification_requests"]) == (2, 1)
    assert await seed.present(engine, "notifications", "id", month_rows | week_rows) == week_rows
    assert await seed.present(engine, "notification_requests", "id", {month, week}) == {week}
    assert await seed.present(engine, "pgqueuer_log", "id", {log}) == set()


async def test_zero_days_keeps_forever(maker: Maker, retention_engine: AsyncEngine) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 2)
    ancient, rows = await seed.sent(engine, app, users, age=3650 * DAY)
    log = await seed.log_row(engine, 1, age=3650 * DAY)
    stat = await seed.statistic(engine, age=3650 * DAY)
    await seed.idempotency_key(engine, app, "expired", age=25 * HOUR)

    deleted = await service.purge(maker, Policy(inbox_days=0, request_days=0))

    # Expired idempotency keys are no history: they go whatever the retention.
    assert deleted == {**dict.fromkeys(service.TABLES, 0), "idempotency_keys": 1}
    assert await seed.present(engine, "notifications", "id", rows) == rows
    assert await seed.present(engine, "notification_requests", "id", {ancient}) == {ancient}
    assert await seed.present(engine, "pgqueuer_log", "id", {log}) == {log}
    assert await seed.present(engine, "pgqueuer_statistics", "id", {stat}) == {stat}

    # Inbox rows alone: the requests stay.
    deleted = await service.purge(maker, Policy(inbox_days=90, request_days=0))
    assert deleted is not None
    assert (deleted["notifications"], deleted["notification_requests"]) == (2, 0)
    assert await seed.present(engine, "notification_requests", "id", {ancient}) == {ancient}
    assert await seed.present(engine, "pgqueuer_log", "id", {log}) == {log}


def test_request_retention_defaults_to_the_inbox_retention() -> None:
    assert Policy.of(Settings()) == Policy(90, 90, schedule="17 * * * *")
    assert Policy.of(Settings(retention_days=30)).request_days == 30
    assert Policy.of(Settings(retention_days=30, request_retention_days=7)).request_days == 7
    assert Policy.of(Settings(retention_days=30, request_retention_days=0)).request_days == 0
    assert Policy.of(Settings(retention_schedule="")).schedule == ""
    with pytest.raises(ValueError, match="must be a cron expression"):
        Settings(retention_schedule="every hour")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings(retention_days=-1)


class Statements:
    """What the engine ran: (kind, table, rows) per DELETE, ('commit', '', 0) per commit."""

    def __init__(self, engine: AsyncEngine):
        self.seen: list[tuple[str, str, int]] = []
        self.sync = engine.sync_engine
        event.listen(self.sync, "after_cursor_execute", self._executed)
        event.listen(self.sync, "commit", self._committed)

    def _executed(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # A batch's DELETE may follow the WITH that picks its rows.
        deleted = re.search(r"\bDELETE FROM (\w+)", statement)
        if deleted is not None:
            self.seen.append(("delete", deleted.group(1), cursor.rowcount))

    def _committed(self, conn: Any) -> None:
        self.seen.append(("commit", "", 0))

    def close(self) -> None:
        event.remove(self.sync, "after_cursor_execute", self._executed)
        event.remove(self.sync, "commit", self._committed)

    def deletes(self, table: str) -> list[int]:
        return [rows for kind, t, rows in self.seen if kind == "delete" and t == table]

    def each_in_its_own_transaction(self) -> bool:
        kinds = [kind for kind, _, _ in self.seen]
        return all(kinds[i + 1] == "commit" for i, kind in enumerate(kinds) if kind == "delete")


async def test_batches_are_bounded(maker: Maker, retention_engine: AsyncEngine) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 30)
    for _ in range(3):
        request = await seed.request(engine, app, age=100 * DAY)
        await seed.inbox_rows(engine, app, request, users[:10], age=100 * DAY)
    progress: list[tuple[str, int, bool]] = []
    statements = Statements(engine)
    try:
        policy = Policy(inbox_days=90, request_days=0, batch=7)
        deleted = await service.purge(maker, policy, progress=lambda *a: progress.append(a))
    finally:
        statements.close()
    assert deleted is not None
    assert deleted["notifications"] == 30
    assert statements.deletes("notifications") == [7, 7, 7, 7, 2]
    assert statements.each_in_its_own_transaction()
    shown = [rows for table, rows, done in progress if table == "notifications" and not done]
    assert shown == [7, 14, 21, 28, 30]
    assert ("notifications", 30, True) in progress


async def test_a_fanned_out_request_goes_in_bounded_batches(
    maker: Maker, retention_engine: AsyncEngine
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 30)
    big = await seed.request(engine, app, age=100 * DAY)
    await seed.inbox_rows(engine, app, big, users, age=10 * DAY)
    small = [await seed.request(engine, app, age=100 * DAY) for _ in range(9)]
    for request in small:
        await seed.inbox_rows(engine, app, request, users[:1], age=10 * DAY)
    statements = Statements(engine)
    try:
        policy = Policy(inbox_days=0, request_days=90, batch=8)
        deleted = await service.purge(maker, policy)
    finally:
        statements.close()
    assert deleted is not None
    assert (deleted["notifications"], deleted["notification_requests"]) == (39, 10)
    rows = statements.deletes("notifications")
    assert sum(rows) == 39
    assert max(rows) == 8
    # The requests go once their rows are gone, so their cascade deletes nothing more.
    assert statements.deletes("notification_requests") == [8, 2]
    assert statements.each_in_its_own_transaction()
    assert await seed.count(engine, "notifications") == 0


async def test_stopping_ends_the_purge_between_batches(
    maker: Maker, retention_engine: AsyncEngine
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 20)
    await seed.sent(engine, app, users, age=100 * DAY)
    progress: list[tuple[str, int, bool]] = []
    deleted = await service.purge(
        maker,
        Policy(inbox_days=90, request_days=90, batch=5),
        progress=lambda *a: progress.append(a),
        stopping=lambda: bool(progress),
    )
    assert deleted is not None
    assert deleted["notifications"] == 5
    assert await seed.count(engine, "notifications") == 15


async def test_one_purge_at_a_time(maker: Maker, retention_engine: AsyncEngine) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 2)
    await seed.sent(engine, app, users, age=100 * DAY)
    policy = Policy(inbox_days=90, request_days=90)
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": repository.LOCK_KEY})
        await other.commit()
        # Another purge holds the lock: the periodic one skips, deleting nothing.
        assert await service.purge(maker, policy) is None
        assert await seed.count(engine, "notifications") == 2

        waited = asyncio.Event()
        running = asyncio.create_task(service.purge(maker, policy, wait=True, on_wait=waited.set))
        await asyncio.wait_for(waited.wait(), 10)
        # It is blocked on the lock in PostgreSQL (a positive sign, not a sleep).
        await _wait_for_lock_waiter(engine)
        assert not running.done()
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": repository.LOCK_KEY})
        await other.commit()
        deleted = await asyncio.wait_for(running, 10)
    assert deleted is not None
    assert deleted["notifications"] == 2


async def _wait_for_lock_waiter(engine: AsyncEngine) -> None:
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    for _ in range(200):
        async with engine.connect() as conn:
            if (await conn.execute(query)).scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the second purge never waited on the lock")


async def test_a_pause_leaves_the_database_to_others_between_batches(
    maker: Maker, retention_engine: AsyncEngine
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 12)
    await seed.sent(engine, app, users, age=100 * DAY)
    spans: list[float] = []
    opened: list[float] = []

    def begun(conn: Any) -> None:
        opened.append(time.monotonic())

    def committed(conn: Any) -> None:
        spans.append(time.monotonic() - opened.pop())

    event.listen(engine.sync_engine, "begin", begun)
    event.listen(engine.sync_engine, "commit", committed)
    try:
        started = time.monotonic()
        policy = Policy(inbox_days=90, request_days=0, batch=4, pause=3.0)
        deleted = await service.purge(maker, policy)
        took = time.monotonic() - started
    finally:
        event.remove(engine.sync_engine, "begin", begun)
        event.remove(engine.sync_engine, "commit", committed)
    assert deleted is not None
    assert deleted["notifications"] == 12
    # Every batch transaction is followed by a sleep three times as long (at least).
    assert len(spans) >= 4
    assert took >= 4 * sum(spans)
