"""/ready: 503 while the database's schema is not at the newest migration.

Runs on a scratch database of its own, whose revision the tests stamp back and forth."""

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.runtime import migrate
from tests import db
from tests.factories import error_message
from tests.test_migrations import config

SCRATCH = f"herald_test_ready_{os.getpid()}"


@pytest.fixture(scope="module")
def scratch(server_url: str) -> Iterator[str]:
    url = asyncio.run(db.recreate(server_url, SCRATCH))
    migrate(url)
    yield url
    asyncio.run(db.drop(server_url, SCRATCH))


@pytest.fixture
async def ready_client(scratch: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"database_url": scratch}))
    engine = make_engine(scratch, pool_size=1)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c
    finally:
        await engine.dispose()


def stamp(url: str, revision: str) -> None:
    # Alembic's env.py runs its own event loop: off this test's loop, in a thread.
    command.stamp(config(url), revision, purge=True)


async def test_ready_at_head_and_not_before(scratch: str, ready_client: httpx.AsyncClient) -> None:
    scripts = ScriptDirectory.from_config(config(scratch))
    head = scripts.get_current_head()
    assert head is not None
    older = scripts.get_revision(head).down_revision
    assert isinstance(older, str)

    assert (await ready_client.get("/ready")).json() == {"status": "ok"}
    try:
        await asyncio.to_thread(stamp, scratch, older)
        assert error_message(await ready_client.get("/ready"), 503) == (
            f"database schema is at revision {older}, expected {head}: run `herald migrate`"
        )
        await asyncio.to_thread(stamp, scratch, "base")
        assert error_message(await ready_client.get("/ready"), 503) == (
            f"database schema is at revision none (never migrated), expected {head}: "
            "run `herald migrate`"
        )
        engine = make_engine(scratch, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO alembic_version VALUES ('9999_later')"))
        finally:
            await engine.dispose()
        assert error_message(await ready_client.get("/ready"), 503) == (
            f"database schema is at revision 9999_later, expected {head}: "
            "a newer Herald migrated it; upgrade this one"
        )
    finally:
        await asyncio.to_thread(stamp, scratch, head)
    assert (await ready_client.get("/ready")).json() == {"status": "ok"}


async def test_ready_without_alembic_table(scratch: str, ready_client: httpx.AsyncClient) -> None:
    engine = make_engine(scratch, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_kept"))
        try:
            message = error_message(await ready_client.get("/ready"), 503)
            assert message.startswith("database schema is at revision none (never migrated)")
        finally:
            async with engine.begin() as conn:
                await conn.execute(
                    text("ALTER TABLE alembic_version_kept RENAME TO alembic_version")
                )
    finally:
        await engine.dispose()
    assert (await ready_client.get("/ready")).status_code == 200


async def test_ready_when_the_database_is_down(settings: Settings) -> None:
    app = create_app(settings)
    engine = make_engine(f"postgresql+asyncpg://herald@127.0.0.1:{_closed_port()}/x", pool_size=1)
    app.state.engine = engine
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            assert error_message(await c.get("/ready"), 503) == "database unavailable"
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
