"""One LISTEN connection per process, reconnecting by itself."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("herald.realtime")
MAX_BATCH = 500
# A fan-out batch announces 5,000 rows in ~17 payloads of 300; handing them over a few at a
# time, with a turn for the requests in between, keeps each step of the loop short.
MAX_BATCH_BYTES = 16_384


class Listener:
    """Hands NOTIFY payloads on `channel` to `handler` in order, in batches of what has
    arrived meanwhile (a busy process catches up instead of falling further behind).

    A dropped connection or a database restart is retried with backoff; events published
    while disconnected are lost to this process (clients refetch when their socket
    reconnects), but never delivered twice."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        handler: Callable[[list[str]], Awaitable[None]],
        *,
        health_every: float = 5.0,
        on_state: Callable[[bool], None] | None = None,
        name: str = "herald-listen",
        exclusive: str | None = None,
    ):
        self.dsn = dsn
        self.channel = channel
        self.handler = handler
        self.health_every = health_every
        # Told True once LISTEN is in place, False when the connection is lost: a consumer
        # that must not miss an event (a cache) knows when to stop trusting what it holds.
        self.on_state = on_state
        # The connection's application_name: operators (and tests) tell the listeners apart.
        self.name = name
        # An advisory lock to hold while listening: only one process of all that share the
        # database hears the channel; the others wait on the lock to take over.
        self.exclusive = exclusive
        self.listening = asyncio.Event()
        self._started = asyncio.Event()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="herald-listen"),
            asyncio.create_task(self._consume(), name="herald-dispatch"),
        ]
        # Start-up waits briefly so events sent right after boot are heard; a database
        # that is down does not block start-up, the loop keeps retrying.
        try:
            await asyncio.wait_for(self._started.wait(), timeout=10)
        except TimeoutError:
            log.warning("realtime: LISTEN not established yet; retrying in the background")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": self.name}
                )
                if self.exclusive is not None:
                    await self._take_turn(conn, self.exclusive)
                await conn.add_listener(self.channel, self._on_notify)
                self.listening.set()
                self._started.set()
                if self.on_state is not None:
                    self.on_state(True)
                backoff = 0.2
                log.info("realtime: listening on %s", self.channel)
                while not conn.is_closed():
                    await asyncio.sleep(self.health_every)
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime: LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                if self.on_state is not None:
                    self.on_state(False)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _take_turn(self, conn: asyncpg.Connection, key: str) -> None:
        """Hold the session advisory lock `key`, waiting for it when another process has it.

        The lock goes with the connection: when its holder's connection drops (the process
        died, the database restarted), the next waiting process takes over."""
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
            log.info("realtime: another process listens on %s; standing by", self.channel)
            self._started.set()
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", key)

    async def _consume(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0])
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1])
            try:
                await self.handler(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("realtime: failed to dispatch %d events", len(batch))
            await asyncio.sleep(0)
