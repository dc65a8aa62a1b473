"""Queue workers: PgQueuer consumers that wait on LISTEN, not on a polling loop."""

import asyncio
import logging
import threading
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker
from app.sends import tasks as send_tasks

log = logging.getLogger("herald.worker")


class Worker:
    """Runs the queue until stopped; reconnects when the database goes away."""

    def __init__(
        self,
        dsn: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        concurrency: int = 4,
        heartbeat: timedelta = timedelta(seconds=10),
    ):
        self.dsn = dsn
        self.sessionmaker = sessionmaker
        self.concurrency = concurrency
        # A job whose worker stopped heart-beating this long ago is picked again: this is
        # what recovers the work of a worker killed with SIGKILL.
        self.heartbeat = heartbeat
        self._stopping = asyncio.Event()
        self._qm: QueueManager | None = None

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": "herald-worker"}
                )
                qm = QueueManager(Queries(AsyncpgDriver(conn)))
                send_tasks.register(qm, self.sessionmaker)
                self._qm = qm
                backoff = 0.5
                log.info("worker: consuming the queue")
                await qm.run(
                    # An idle worker wakes this often even without a NOTIFY: it is how it
                    # notices a job whose heartbeat went stale, so a killed worker's job is
                    # taken over within two heartbeats instead of heartbeat + 30 s.
                    dequeue_timeout=self.heartbeat,
                    batch_size=self.concurrency,
                    max_concurrent_tasks=self.concurrency * 2,
                    heartbeat_timeout=self.heartbeat,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker: queue connection lost (%s); reconnecting", exc)
            finally:
                self._qm = None
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not self._stopping.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        """Finish jobs in flight, then return from `run`."""
        self._stopping.set()
        if self._qm is not None:
            self._qm.shutdown.set()


class WorkerThread:
    """The in-process worker on a thread and event loop of its own, with its own pool.

    A fan-out batch is tens of milliseconds of Python (5,000 rows to route, write and
    announce). On the server's event loop that stalled every request for as long; on its
    own loop the interpreter hands the other thread its turn every few milliseconds
    (sys.getswitchinterval), so requests wait at most that long."""

    def __init__(self, url: str, *, pool_size: int = 4):
        self.url = url
        self.pool_size = pool_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Worker | None = None
        self._thread = threading.Thread(target=self._main, name="herald-worker", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=30)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        engine = make_engine(self.url, pool_size=self.pool_size)
        try:
            self._loop = asyncio.get_running_loop()
            self._worker = Worker(self.url.replace("+asyncpg", "", 1), make_sessionmaker(engine))
            self._ready.set()
            await self._worker.run()
        finally:
            self._ready.set()
            await engine.dispose()

    async def stop(self, *, grace: float = 30) -> None:
        """Finish the jobs in flight, then end the thread (waiting in a helper thread)."""
        if self._loop is not None and self._worker is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._worker.stop)
        await asyncio.to_thread(self._thread.join, grace)
        if self._thread.is_alive():
            log.warning("worker: jobs still running after %.0f s; leaving them to recovery", grace)
