"""A few connections of the driver's own, for the hot reads (the inbox page).

SQLAlchemy's pool costs 80 µs of CPU per checkout here (greenlet switches, its queue,
events, reset on return), an eighth of an inbox page. Taking a connection from this pool is
a list pop. It keeps SQLAlchemy's pool's rules: connections are opened on demand, up to
`size`, and kept; a request past them waits, up to `timeout`, then gets the pool timeout
(a 503 with Retry-After); a connection idle for IDLE_PING_SECONDS is pinged before use; one
that failed as dead, or whose statement was cancelled midway, is closed, never reused."""

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import asyncpg
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.faults import closed_under, disconnected

# A pooled connection unused this long is pinged before use; a busy one is not. A ping on
# every checkout (pool_pre_ping) was a round trip per request, a tenth of an inbox page's
# CPU. A connection that died while in steady use (a restart) fails its next statement once,
# as a 503, and is closed. The engine's pool (app.db) keeps the same rule.
IDLE_PING_SECONDS = 2.0
# Page reads are short: a few connections keep PostgreSQL busy on a few cores, and a
# request past them waits for a connection, not for a backend to start.
SIZE = 4


class ReadPool:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        size: int = SIZE,
        timeout: float = 30.0,
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # (connection, idle since)
        self._opened = 0
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    @property
    def opened(self) -> int:
        return self._opened

    @property
    def in_use(self) -> int:
        return self._opened - len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self._take()
        try:
            yield connection
        except Exception as exc:
            lost = closed_under(connection, exc)
            if lost is not None:
                self._drop(connection)
                raise lost from exc
            if disconnected(exc):
                self._drop(connection)
            else:
                self._give(connection)
            raise
        except BaseException:
            # Cancelled mid-statement: what the connection will read next is unknown.
            self._drop(connection)
            raise
        self._give(connection)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._opened -= 1
            connection.terminate()

    async def _take(self) -> asyncpg.Connection:
        deadline = time.monotonic() + self._timeout
        while True:
            while self._idle:
                connection, since = self._idle.pop()
                if connection.is_closed():
                    self._opened -= 1
                    continue
                if time.monotonic() - since >= IDLE_PING_SECONDS:
                    try:
                        await connection.execute("SELECT 1", timeout=5)
                    except Exception:
                        self._drop(connection)
                        continue
                return connection
            if self._opened < self._size:
                self._opened += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._opened -= 1
                    self._wake(None)
                    raise
            handed = await self._wait(deadline)
            if handed is not None:
                return handed

    async def _wait(self, deadline: float) -> asyncpg.Connection | None:
        """Wait for a connection handed over by `_give` (first come, first served: a
        request that waited is not overtaken by one that just arrived), or for None: a
        connection was closed, so one may be opened."""
        waiter: asyncio.Future[asyncpg.Connection | None]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise PoolTimeout(f"no read connection free within {self._timeout:g} s") from None
        except BaseException:
            # Cancelled just after a connection was handed over: give it to the next.
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._give(waiter.result())
            raise
        finally:
            with suppress(ValueError):
                self._waiters.remove(waiter)

    def _give(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed():
            self._drop(connection)
            return
        if not self._wake(connection):
            self._idle.append((connection, time.monotonic()))

    def _drop(self, connection: asyncpg.Connection) -> None:
        self._opened -= 1
        connection.terminate()
        self._wake(None)

    def _wake(self, connection: asyncpg.Connection | None) -> bool:
        """Hand `connection` (or None: room to open one) to the longest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False
