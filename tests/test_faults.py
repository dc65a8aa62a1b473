"""Database faults: which errors a client should retry (app/faults.py), and what it is told: a
503 in the error shape with Retry-After, answered inside the app, logged once.

Every fault here is a real one, made on a real PostgreSQL server: a refused port, a backend
terminated under a connection, errors raised with their SQLSTATE, an exhausted pool, and a
backend that dies while it commits."""

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from app.apps import service as apps_service
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.faults import Fault, fault_of
from app.main import create_app
from app.runtime import migrate
from bench.server import free_port
from tests import db
from tests.factories import TEST_KEYRING, Creds, error_message, send_body

SCRATCH = f"herald_test_faults_{os.getpid()}"


async def _failure(engine: AsyncEngine, sql: str) -> BaseException:
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql!r} did not fail")


async def test_a_refused_connection_is_unavailable() -> None:
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        failure = await _failure(engine, "SELECT 1")
    finally:
        await engine.dispose()
    assert isinstance(failure, OSError)
    assert fault_of(failure) is Fault.UNAVAILABLE


async def test_a_terminated_backend_is_unavailable_and_its_connection_is_replaced(
    database_url: str, engine: AsyncEngine
) -> None:
    victim = make_engine(database_url, pool_size=1)
    try:
        async with victim.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            async with engine.connect() as killer:
                await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT 1"))
        assert fault_of(caught.value) is Fault.UNAVAILABLE
        assert caught.value.connection_invalidated
        # The pool hands out a working connection next, not the dead one.
        async with victim.connect() as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        await victim.dispose()


@pytest.mark.parametrize(
    ("sqlstate", "fault"),
    [
        ("57P01", Fault.UNAVAILABLE),  # admin shutdown: a restart
        ("57P03", Fault.UNAVAILABLE),  # cannot connect now: starting up or in recovery
        ("08006", Fault.UNAVAILABLE),  # connection failure
        ("53300", Fault.BUSY),  # too many connections
        ("40P01", Fault.BUSY),  # deadlock victim
        ("40001", Fault.BUSY),  # serialization failure
        ("57014", Fault.BUSY),  # statement timeout
        ("23505", None),  # unique violation: a bug or a conflict, not a fault
        ("42P01", None),  # undefined table: a bug
        ("P0001", None),  # a plain RAISE
    ],
)
async def test_faults_are_told_by_sqlstate(
    engine: AsyncEngine, sqlstate: str, fault: Fault | None
) -> None:
    failure = await _failure(
        engine, f"DO $$ BEGIN RAISE EXCEPTION 'made' USING ERRCODE = '{sqlstate}'; END $$"
    )
    assert isinstance(failure, DBAPIError)
    assert fault_of(failure) is fault
    # A connection that reported a shutdown is discarded even before asyncpg has seen the
    # socket close (app.db._dead_connections); one that reported a busy server is kept.
    assert failure.connection_invalidated is (fault is Fault.UNAVAILABLE)


async def test_an_exhausted_pool_is_busy(database_url: str) -> None:
    small = make_engine(database_url, pool_size=1, pool_timeout=0.1)
    try:
        async with small.connect():  # the pool's one connection (no overflow)
            failure = await _failure(small, "SELECT 1")
    finally:
        await small.dispose()
    assert isinstance(failure, PoolTimeout)
    assert fault_of(failure) is Fault.BUSY


@pytest.fixture
async def tiny_pool_app(settings: Settings, database_url: str) -> AsyncIterator[FastAPI]:
    """An app whose pool holds one connection (no overflow) and waits 0.2 s for it."""
    app = create_app(settings)
    app.state.engine = make_engine(database_url, pool_size=1, pool_timeout=0.2)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    yield app
    await app.state.engine.dispose()


async def test_a_pool_timeout_answers_503_logged_once_and_the_connection_stays_usable(
    tiny_pool_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    engine: AsyncEngine = tiny_pool_app.state.engine
    caplog.set_level(logging.INFO)
    transport = httpx.ASGITransport(app=tiny_pool_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        async with engine.connect():
            caplog.clear()
            busy = await client.get("/v3/notifications", headers={"X-ENGAGESPOT-API-KEY": "k"})
            records = list(caplog.records)
        assert error_message(busy, 503) == "Herald is busy; retry shortly"
        assert busy.headers["Retry-After"] == "1"
        # Once, without a traceback, and the access log has the real status.
        faults = [r for r in records if r.name == "herald.errors"]
        assert [r.levelno for r in faults] == [logging.WARNING], [r.getMessage() for r in faults]
        assert faults[0].exc_info is None
        assert "TimeoutError" in faults[0].getMessage()
        assert [r for r in records if r.levelno >= logging.ERROR] == []
        [access] = [r for r in records if r.name == "herald.access"]
        assert access.__dict__["status"] == 503, access.__dict__
        # With the pool free again the same client gets through.
        after = await client.get("/v3/notifications", headers={"X-ENGAGESPOT-API-KEY": "k"})
        assert after.status_code == 401, after.text


# A deferred constraint trigger runs inside COMMIT: this one makes its backend terminate
# itself there, as a server shutting down mid-commit would. The transaction does not commit.
DIE_AT_COMMIT = [
    """
    CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON notification_requests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_at_commit()
    """,
]


@pytest.fixture(scope="module")
def scratch(server_url: str) -> Iterator[str]:
    """A database of this module's own, where requests really commit."""
    url = asyncio.run(db.recreate(server_url, SCRATCH))
    migrate(url)
    yield url
    asyncio.run(db.drop(server_url, SCRATCH))


@pytest.fixture
async def committing_app(settings: Settings, scratch: str) -> AsyncIterator[tuple[FastAPI, Creds]]:
    app = create_app(settings)
    app.state.engine = make_engine(scratch, pool_size=2)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    async with app.state.sessionmaker.begin() as session:
        made = await apps_service.create(
            session, TEST_KEYRING, name="commit-" + uuid.uuid4().hex[:6]
        )
    yield app, Creds(made.id, made.api_key, made.api_secret)
    await app.state.engine.dispose()


async def _requests(url: str, app_id: int) -> list[tuple[str, int]]:
    """(request id, inbox rows) of every send the app has."""
    conn = await asyncpg.connect(db.plain(url))
    try:
        rows = await conn.fetch(
            "SELECT r.id::text, (SELECT count(*) FROM notifications n WHERE n.request_id = r.id)"
            " FROM notification_requests r WHERE r.app_id = $1",
            app_id,
        )
        return [(r[0], int(r[1])) for r in rows]
    finally:
        await conn.close()


async def test_a_connection_lost_during_commit_answers_503_and_a_retry_with_its_key_sends_once(
    committing_app: tuple[FastAPI, Creds], scratch: str
) -> None:
    app, creds = committing_app
    headers = {**creds.backend(), "Idempotency-Key": "commit-" + uuid.uuid4().hex}
    body = send_body("alice", title="Exactly once")
    conn = await asyncpg.connect(db.plain(scratch))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            for statement in DIE_AT_COMMIT:
                await conn.execute(statement)
            try:
                lost = await c.post("/v3/notifications", json=body, headers=headers)
            finally:
                await conn.execute("DROP TRIGGER die_at_commit ON notification_requests")
                await conn.execute("DROP FUNCTION die_at_commit()")
            assert error_message(lost, 503) == "The database is unavailable; retry shortly"
            assert lost.headers["Retry-After"] == "1"
            assert await _requests(scratch, creds.id) == []

            # What the README tells a client: retry with the same Idempotency-Key.
            retried = await c.post("/v3/notifications", json=body, headers=headers)
            assert retried.status_code == 202, retried.text
            again = await c.post("/v3/notifications", json=body, headers=headers)
            assert again.json() == retried.json()
    finally:
        await conn.close()
    assert await _requests(scratch, creds.id) == [(retried.json()["requestId"], 1)]


async def test_a_statement_a_migration_invalidated_is_busy(database_url: str) -> None:
    """DDL under a pooled connection's cached prepared statement fails that statement once:
    a 503 to retry, not a 500."""
    engine = make_engine(database_url, pool_size=1)
    other = make_engine(database_url, pool_size=1)
    table = f"faults_cached_{os.getpid()}"
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (a int)"))
            await conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
        query = text(f"SELECT * FROM {table}")
        async with engine.connect() as conn:
            await conn.execute(query)  # prepared and cached on the pooled connection
        async with other.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {table} ADD COLUMN b int"))
        failure = await _failure(engine, f"SELECT * FROM {table}")
        assert failure is not None
        assert fault_of(failure) is Fault.BUSY
        async with engine.connect() as conn:  # the retry succeeds
            assert (await conn.execute(query)).all() == [(1, None)]
    finally:
        async with other.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()
        await other.dispose()
