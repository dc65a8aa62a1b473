"""Herald and PgQueuer agree: the migrations build the queue tables PgQueuer's own installer
builds, and a job enqueued Herald's way (app.queue.enqueue, inside a session's transaction)
is what PgQueuer's QueueManager hands its entrypoint.

Herald writes jobs with its own SQL and pins migration 0002 to a copy of PgQueuer's DDL, so
these are the tests that notice when a PgQueuer upgrade stops matching either."""

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine, make_sessionmaker
from app.queue.enqueue import enqueue
from tests import db

# Everything PostgreSQL knows about the objects whose names match $1, one sorted line each.
CATALOG = """
SELECT 'table ' || relname || ' ' || relpersistence::text || ' '
       || coalesce(array_to_string(reloptions, ','), '')
  FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE $1
UNION ALL
SELECT 'column ' || table_name || '.' || column_name || ' #' || ordinal_position || ' '
       || udt_name || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' '
       || is_identity || ' ' || coalesce(identity_generation, '')
  FROM information_schema.columns WHERE table_schema = 'public' AND table_name LIKE $1
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename LIKE $1
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE $1
UNION ALL
SELECT 'type ' || typname || ' ' || typtype::text || ' '
       || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                      FROM pg_enum WHERE enumtypid = t.oid), '')
  FROM pg_type t
 WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c') AND typrelid = 0
   AND typname LIKE $1
UNION ALL
SELECT 'function ' || pg_get_functiondef(oid)
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE $1
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger
 WHERE NOT tgisinternal AND tgname LIKE $1
UNION ALL
SELECT 'sequence ' || sequencename || ' ' || data_type || ' ' || start_value || ' '
       || increment_by || ' ' || max_value || ' ' || cycle
  FROM pg_sequences WHERE schemaname = 'public' AND sequencename LIKE $1
"""
QUEUE_OBJECTS = "%pgqueuer%"


async def catalog(url: str, pattern: str) -> list[str]:
    conn = await asyncpg.connect(db.plain(url))
    try:
        return sorted(row[0] for row in await conn.fetch(CATALOG, pattern))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def migrated(server_url: str) -> Iterator[str]:
    """A database of this module's own at head, whose writes commit."""
    name = f"herald_test_pgqueuer_{os.getpid()}"
    with db.migrated(server_url, name) as url:
        yield url


@pytest.fixture(scope="module")
def installed(server_url: str) -> Iterator[str]:
    """A database holding nothing but what the installed PgQueuer's installer creates."""
    name = f"herald_test_pgqinstall_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))

    async def install() -> None:
        conn = await asyncpg.connect(db.plain(url))
        try:
            await conn.execute(QueryBuilderEnvironment().build_install_query(create_schema=False))
        finally:
            await conn.close()

    asyncio.run(install())
    yield url
    asyncio.run(db.drop(server_url, name))


async def test_the_migrations_build_the_queue_pgqueuer_installs(
    migrated: str, installed: str
) -> None:
    theirs = await catalog(installed, "%")
    # The pattern names every object the installer makes, so nothing escapes the comparison.
    assert await catalog(installed, QUEUE_OBJECTS) == theirs
    assert any(line.startswith("trigger ") for line in theirs)
    assert any(line.startswith("function ") for line in theirs)
    assert await catalog(migrated, QUEUE_OBJECTS) == theirs


@pytest.fixture
async def queue_engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(migrated, pool_size=2)
    yield engine
    await engine.dispose()


async def test_a_job_enqueued_herald_s_way_reaches_a_pgqueuer_entrypoint(
    migrated: str, queue_engine: AsyncEngine
) -> None:
    entrypoint = "contract_" + secrets.token_hex(4)
    maker = make_sessionmaker(queue_engine)
    now = await _server_now(migrated)
    later = now + timedelta(hours=1)

    async with maker() as session:
        transaction = await session.begin()
        await enqueue(session, entrypoint, {"job": "rolled back"})
        await transaction.rollback()
    async with maker.begin() as session:
        await enqueue(
            session, entrypoint, {"job": "now", "text": "héllo ✓", "n": [1, 2]}, priority=7
        )
        await enqueue(session, entrypoint, {"job": "later"}, not_before=later)

    conn = await asyncpg.connect(db.plain(migrated))
    try:
        rows = await conn.fetch(
            "SELECT payload, priority, status, execute_after FROM pgqueuer"
            " WHERE entrypoint = $1 ORDER BY id",
            entrypoint,
        )
        # The rolled-back job left nothing: exactly the two committed ones are queued.
        assert [json.loads(r["payload"])["job"] for r in rows] == ["now", "later"]
        assert [r["status"] for r in rows] == ["queued", "queued"]
        assert [r["priority"] for r in rows] == [7, 0]
        assert abs(rows[1]["execute_after"] - later) < timedelta(seconds=1)

        qm = QueueManager(Queries(AsyncpgDriver(conn)))
        received: list[Job] = []

        @qm.entrypoint(entrypoint)
        async def consume(job: Job) -> None:
            received.append(job)
            qm.shutdown.set()

        # One dequeue batch holds every job due: had the delayed job been due, it would
        # have been handed over in the same batch as the first.
        await asyncio.wait_for(qm.run(dequeue_timeout=timedelta(seconds=1), batch_size=10), 30)

        assert len(received) == 1
        job = received[0]
        assert job.entrypoint == entrypoint
        assert job.priority == 7
        assert json.loads(job.payload or b"") == {"job": "now", "text": "héllo ✓", "n": [1, 2]}
        left = await conn.fetch(
            "SELECT id, payload, status FROM pgqueuer WHERE entrypoint = $1", entrypoint
        )
        assert [(json.loads(r["payload"])["job"], r["status"]) for r in left] == [
            ("later", "queued")
        ]
        assert job.id not in [r["id"] for r in left]
        logged = await conn.fetch(
            "SELECT status FROM pgqueuer_log WHERE job_id = $1 ORDER BY id", job.id
        )
        assert [r["status"] for r in logged] == ["queued", "picked", "successful"]
    finally:
        await conn.close()


async def _server_now(url: str) -> datetime:
    conn = await asyncpg.connect(db.plain(url))
    try:
        now: datetime = await conn.fetchval("SELECT now()")
        return now.astimezone(UTC)
    finally:
        await conn.close()
