"""Alembic environment: async engine; the URL comes from the caller or HERALD_DATABASE_URL."""

import asyncio
import logging
import time

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from app import schema_health
from app.config import get_settings
from app.db import MIGRATION_LOCK
from app.models import Base

config = context.config
target_metadata = Base.metadata
log = logging.getLogger("herald.migrate")

# How often a process that waits for another's migrations tries the lock again, and how
# often it says that it is still waiting.
POLL_SECONDS = 0.2
REPORT_SECONDS = 30.0


def _url() -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    if not url:
        raise SystemExit("no database URL: set HERALD_DATABASE_URL or run `herald migrate`")
    return str(url)


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PgQueuer's tables are installed by a migration but described by PgQueuer, not our models.
    return not (type_ == "table" and reflected and (name or "").startswith("pgqueuer"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _take_lock(connection: AsyncConnection) -> None:
    """Wait until this session holds the migration lock, between transactions.

    Polls pg_try_advisory_lock instead of blocking in pg_advisory_lock: a session blocked
    in a statement holds a snapshot, and CREATE INDEX CONCURRENTLY (0003) waits for every
    older snapshot to go, while the waiter waits for our lock: PostgreSQL calls that a
    deadlock and fails the waiter."""
    started = time.monotonic()
    next_report = started
    query = text("SELECT pg_try_advisory_lock(:key)")
    while True:
        taken = await connection.scalar(query, {"key": MIGRATION_LOCK})
        await connection.commit()
        if taken:
            return
        now = time.monotonic()
        if now >= next_report:
            log.info(
                "migrations: another process is migrating this database; waiting (%.0f s)",
                now - started,
            )
            next_report = now + REPORT_SECONDS
        await asyncio.sleep(POLL_SECONDS)


async def _run_async() -> None:
    # One unpooled connection: the advisory lock is its session's, so closing it releases
    # the lock even when a migration fails.
    engine = create_async_engine(
        _url(),
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": "herald-migrate"}},
    )
    try:
        async with engine.connect() as connection:
            await _take_lock(connection)
            await connection.run_sync(_run)
            # Still under the lock, so two processes never rebuild one index at once.
            left = await schema_health.repair(connection)
            if left:
                raise SystemExit(
                    f"herald migrate: INVALID index {', '.join(left)} could not be rebuilt "
                    "(the error is logged above); fix its cause and run `herald migrate` again"
                )
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
