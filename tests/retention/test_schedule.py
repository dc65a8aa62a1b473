"""The periodic purge: the worker registers it as a PgQueuer schedule, and it runs."""

import asyncio

from pgqueuer import PgQueuer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.retention import tasks as retention_tasks
from app.retention.service import Policy
from app.retention.tasks import ENTRYPOINT
from app.worker import Worker
from tests.queue.support import wait_for
from tests.retention import seed
from tests.retention.seed import DAY

EVERY_SECOND = "* * * * * *"


async def test_the_worker_runs_the_purge_on_its_schedule(
    maker: async_sessionmaker[AsyncSession], retention_engine: AsyncEngine, retention_url: str
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 2)
    old, old_rows = await seed.sent(engine, app, users, age=100 * DAY)
    young, young_rows = await seed.sent(engine, app, users, age=DAY)

    policy = Policy(inbox_days=90, request_days=90, schedule=EVERY_SECOND)
    worker = Worker(retention_url.replace("+asyncpg", "", 1), maker, retention=policy)
    running = asyncio.create_task(worker.run())
    try:

        async def purged() -> bool | None:
            # The request goes last, after its inbox rows.
            left = await seed.present(engine, "notification_requests", "id", {old, young})
            return True if left == {young} else None

        await wait_for(purged, within=20, what="the scheduled purge to delete the old request")
        left = await seed.present(engine, "notifications", "id", old_rows | young_rows)
        assert left == young_rows

        async def ran() -> tuple[str, str] | None:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT entrypoint, expression FROM pgqueuer_schedules "
                            "WHERE last_run IS NOT NULL"
                        )
                    )
                ).first()
            return None if row is None else (row[0], row[1])

        assert await wait_for(ran, within=10, what="the schedule's last run") == (
            ENTRYPOINT,
            EVERY_SECOND,
        )
    finally:
        worker.stop()
        await asyncio.wait_for(running, 15)


def test_no_schedule_without_a_cron(maker: async_sessionmaker[AsyncSession]) -> None:
    pgq = PgQueuer.in_memory()
    assert not retention_tasks.schedule(pgq.sm, maker, Policy(90, 90, schedule=""))
    assert pgq.sm.registry == {}
    assert retention_tasks.schedule(pgq.sm, maker, Policy(90, 90, schedule="@hourly"))
    [key] = pgq.sm.registry
    assert (key.entrypoint, key.expression) == (ENTRYPOINT, "0 * * * *")


async def test_herald_serve_schedules_the_purge(live_server: str, live_engine: AsyncEngine) -> None:
    """The default settings' schedule, registered by `herald serve`'s in-process worker."""

    async def stored() -> tuple[str, str] | None:
        async with live_engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT entrypoint, expression FROM pgqueuer_schedules "
                        "WHERE entrypoint = :e"
                    ),
                    {"e": ENTRYPOINT},
                )
            ).first()
        return None if row is None else (row[0], row[1])

    assert await wait_for(stored, within=20, what="the purge's schedule") == (
        ENTRYPOINT,
        "17 * * * *",
    )
