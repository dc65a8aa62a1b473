"""Queue workers: PgQueuer consumers that wait on LISTEN, not on a polling loop.

Two lanes, each its own PgQueuer consumer on its own connection: the send pipeline's fan-out
(with the periodic retention purge), and deliveries to providers. A slow or paused provider
fills only the delivery lane's slots, so it never holds up inbox rows."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import asyncpg
from pgqueuer import PgQueuer, QueueManager
from pgqueuer.core.sm import SchedulerManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.delivery import tasks as delivery_tasks
from app.delivery.engine import Engine
from app.retention import tasks as retention_tasks
from app.retention.service import Policy
from app.sends import tasks as send_tasks

log = logging.getLogger("herald.worker")
T = TypeVar("T")


class Worker:
    """Runs the queue until stopped; reconnects when the database goes away."""

    def __init__(
        self,
        dsn: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        concurrency: int = 4,
        heartbeat: timedelta = timedelta(seconds=10),
        settings: Settings | None = None,
        retention: Policy | None = None,
    ):
        self.dsn = dsn
        self.sessionmaker = sessionmaker
        self.concurrency = concurrency
        self.settings = settings or get_settings()
        # A job whose worker stopped heart-beating this long ago is picked again: this is
        # what recovers the work of a worker killed with SIGKILL.
        self.heartbeat = heartbeat
        self.retention = retention
        self._stopping = asyncio.Event()
        self._qms: list[QueueManager] = []

    async def run(self) -> None:
        engine = Engine(self.sessionmaker, self.settings)
        lanes = self.settings.delivery_concurrency
        try:
            await asyncio.gather(
                self._lane(
                    "sends",
                    lambda qm: send_tasks.register(
                        qm,
                        self.sessionmaker,
                        web_push=self.settings.vapid_subject is not None,
                    ),
                    batch=self.concurrency,
                    slots=self.concurrency * 2,
                    schedule=self._schedule,
                ),
                self._lane(
                    "deliveries",
                    lambda qm: delivery_tasks.register(qm, engine),
                    batch=max(1, lanes // 2),
                    slots=lanes,
                ),
            )
        finally:
            await engine.aclose()

    def _schedule(self, sm: SchedulerManager) -> bool:
        """Register the periodic jobs; True when there is any."""
        if self.retention is None:
            return False
        return retention_tasks.schedule(sm, self.sessionmaker, self.retention)

    async def _lane(
        self,
        name: str,
        register: Callable[[QueueManager], None],
        *,
        batch: int,
        slots: int,
        schedule: Callable[[SchedulerManager], bool] | None = None,
    ) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            qm: QueueManager | None = None
            try:
                # A stop while connecting (say, the port was taken and uvicorn gives up)
                # must not wait for the connection to be made or to time out.
                conn = await self._unless_stopped(
                    asyncpg.connect(
                        self.dsn, timeout=10, server_settings={"application_name": "herald-worker"}
                    )
                )
                if conn is None:
                    break
                # The queue manager and the scheduler share the connection and the stop.
                pgq = PgQueuer.from_asyncpg_connection(conn)
                qm = pgq.qm
                register(qm)
                scheduled = schedule is not None and schedule(pgq.sm)
                self._qms.append(qm)
                if self._stopping.is_set():
                    break
                backoff = 0.5
                log.info("worker: consuming the %s queue", name)
                # Without a schedule the scheduler would only poll: run the queue alone.
                await (pgq if scheduled else qm).run(
                    # An idle worker wakes this often even without a NOTIFY: it is how it
                    # notices a job whose heartbeat went stale, so a killed worker's job is
                    # taken over within two heartbeats instead of heartbeat + 30 s.
                    dequeue_timeout=self.heartbeat,
                    batch_size=batch,
                    max_concurrent_tasks=slots,
                    heartbeat_timeout=self.heartbeat,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker: %s queue connection lost (%s); reconnecting", name, exc)
            finally:
                if qm is not None and qm in self._qms:
                    self._qms.remove(qm)
                if conn is not None and not conn.is_closed():
                    await conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, 10.0)

    async def _unless_stopped(self, work: Awaitable[T]) -> T | None:
        """The result of `work`, or None (with `work` cancelled) once `stop` is called."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stopped.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            result = await task
            # Connected just as it was cancelled: hand the result back to be closed.
            return result
        return None

    def stop(self) -> None:
        """Finish jobs in flight, then return from `run`."""
        self._stopping.set()
        for qm in list(self._qms):
            qm.shutdown.set()


class WorkerThread:
    """The in-process worker on a thread and event loop of its own, with its own pool.

    A fan-out batch is tens of milliseconds of Python (5,000 rows to route, write and
    announce). On the server's event loop that stalled every request for as long; on its
    own loop the interpreter hands the other thread its turn every few milliseconds
    (sys.getswitchinterval), so requests wait at most that long."""

    def __init__(
        self,
        url: str,
        *,
        settings: Settings | None = None,
        retention: Policy | None = None,
        pool_size: int = 4,
    ):
        self.url = url
        self.settings = settings
        self.retention = retention
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
            self._worker = Worker(
                self.url.replace("+asyncpg", "", 1),
                make_sessionmaker(engine),
                settings=self.settings,
                retention=self.retention,
            )
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
