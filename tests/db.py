"""The test database: a fresh `herald_test` database on the embedded (or given) server."""

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from app.embedded import EmbeddedPostgres
from app.runtime import migrate

ROOT = Path(__file__).resolve().parent.parent
# One database per pytest process, so concurrent runs on one server never collide.
TEST_DB = f"herald_test_{os.getpid()}"


@contextmanager
def server_url() -> Iterator[str]:
    """HERALD_TEST_DATABASE_URL, or an embedded PostgreSQL kept in .herald-test/."""
    given = os.environ.get("HERALD_TEST_DATABASE_URL")
    if given:
        yield given.replace("postgresql://", "postgresql+asyncpg://", 1)
        return
    embedded = EmbeddedPostgres(ROOT / ".herald-test")
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def recreate(url: str, name: str = TEST_DB) -> str:
    """Drop and create database `name` beside the one `url` names; return its URL.

    Databases left by test processes that no longer run are dropped on the way."""
    conn = await asyncpg.connect(plain(url))
    try:
        for row in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'herald\\_test\\_%'"
        ):
            pid = row["datname"].rsplit("_", 1)[-1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):  # noqa: ASYNC240
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(url, name)


async def drop(url: str, name: str = TEST_DB) -> None:
    conn = await asyncpg.connect(plain(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def migrated(server_url: str, name: str = TEST_DB) -> Iterator[str]:
    """Database `name`, recreated beside `server_url` and migrated to head; dropped afterwards.

    Sync on purpose: Alembic's env.py runs its own event loop."""
    url = asyncio.run(recreate(server_url, name))
    migrate(url)
    try:
        yield url
    finally:
        asyncio.run(drop(server_url, name))


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="herald-test-"))
