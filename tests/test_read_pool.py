"""The inbox page's own connections (app/read_pool.py), against the tests' PostgreSQL: a
bounded pool that waits and then times out as a 503's fault, and never hands out a
connection that died, was killed while idle, or was cancelled mid-statement."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import read_pool
from app.db import CONNECT_ARGS
from app.faults import Fault, fault_of
from app.read_pool import ReadPool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[ReadPool]:
    dsn = database_url.replace("+asyncpg", "", 1)
    made = ReadPool(lambda: asyncpg.connect(dsn, **CONNECT_ARGS), size=2, timeout=0.3)
    yield made
    await made.close()


async def _pid(pool: ReadPool) -> int:
    async with pool.connection() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
    assert isinstance(pid, int)
    return pid


async def _kill(database_url: str, pid: int) -> None:
    admin = await asyncpg.connect(database_url.replace("+asyncpg", "", 1))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_connections_are_kept_and_bounded(pool: ReadPool) -> None:
    assert {await _pid(pool) for _ in range(5)} == {await _pid(pool)}
    assert pool.opened == 1
    async with pool.connection() as first, pool.connection() as second:
        assert first is not second
        assert pool.opened == 2
        with pytest.raises(PoolTimeout) as raised:
            async with pool.connection():
                pass
        assert fault_of(raised.value) is Fault.BUSY


async def test_a_waiting_request_gets_the_connection_given_back(pool: ReadPool) -> None:
    async with pool.connection():
        async with pool.connection() as second:
            waiting = asyncio.create_task(_pid(pool))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            expected = await second.fetchval("SELECT pg_backend_pid()")
        assert await waiting == expected


async def test_a_connection_that_died_in_use_is_not_reused(
    pool: ReadPool, database_url: str
) -> None:
    pids: list[int] = []

    async def killed_midway() -> None:
        async with pool.connection() as connection:
            pids.append(await connection.fetchval("SELECT pg_backend_pid()"))
            await _kill(database_url, pids[0])
            await connection.fetchval("SELECT 1")

    # Which error depends on when the driver reads the server's goodbye; each is a fault.
    lost = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
    with pytest.raises(lost) as raised:
        await killed_midway()
    assert fault_of(raised.value) is Fault.UNAVAILABLE
    assert pool.opened == 0
    assert await _pid(pool) != pids[0]


async def test_an_idle_connection_that_died_is_replaced_not_handed_out(
    pool: ReadPool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await _pid(pool)
    await _kill(database_url, pid)
    monkeypatch.setattr(read_pool, "IDLE_PING_SECONDS", 0.0)
    # Whichever finds it dead first, the driver (it read the server's goodbye) or the ping
    # of an idle connection, the caller gets a new connection, not an error.
    assert await _pid(pool) != pid
    assert pool.opened == 1


async def test_a_statement_cancelled_midway_closes_its_connection(pool: ReadPool) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with pool.connection() as connection:
            started.set()
            await connection.execute("SELECT pg_sleep(10)")

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.opened == 0
    assert await _pid(pool) > 0


async def test_a_waiting_request_is_not_overtaken_by_a_newcomer(pool: ReadPool) -> None:
    order: list[str] = []

    async def take(name: str) -> None:
        async with pool.connection():
            order.append(name)
            await asyncio.sleep(0.01)

    async with pool.connection():
        async with pool.connection():
            first = asyncio.create_task(take("waited"))
            await asyncio.sleep(0.05)
        # The connection given back is the waiting request's already: the newcomer waits.
        newcomer = asyncio.create_task(take("newcomer"))
        await asyncio.gather(first, newcomer)
    assert order == ["waited", "newcomer"]
