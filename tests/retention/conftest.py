"""A database of the retention tests' own: a purge commits and deletes across every app.

Each test starts from empty tables and seeds rows with backdated timestamps."""

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker
from tests import db

SCRATCH = f"herald_test_retention_{os.getpid()}"
TABLES = (
    "apps",
    "notification_requests",
    "notifications",
    "idempotency_keys",
    "pgqueuer",
    "pgqueuer_log",
    "pgqueuer_statistics",
    "pgqueuer_schedules",
)


@pytest.fixture(scope="session")
def retention_url(server_url: str) -> Iterator[str]:
    with db.migrated(server_url, SCRATCH) as url:
        yield url


@pytest.fixture
async def retention_engine(retention_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(retention_url, pool_size=3)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def maker(retention_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(retention_engine)
