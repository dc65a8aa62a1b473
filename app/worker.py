"""Queue workers: PgQueuer consumers that wait on LISTEN, not on a polling loop.

Two lanes, each its own PgQueuer consumer on its own connection: the send pipeline's fan-out,
and deliveries to providers. A slow or paused provider fills only the delivery lane's slots,
so it never holds up inbox rows."""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings, get_settings
from app.delivery import tasks as delivery_tasks
from app.delivery.engine import Engine
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
        settings: Settings | None = None,
    ):
        self.dsn = dsn
        self.sessionmaker = sessionmaker
        self.concurrency = concurrency
        self.settings = settings or get_settings()
        # A job whose worker stopped heart-beating this long ago is picked again: this is
        # what recovers the work of a worker killed with SIGKILL.
        self.heartbeat = heartbeat
        self._stopping = asyncio.Event()
        self._qms: list[QueueManager] = []

    async def run(self) -> None:
        engine = Engine(self.sessionmaker, self.settings)
        lanes = self.settings.delivery_concurrency
        try:
            await asyncio.gather(
                self._lane(
                    "sends",
                    lambda qm: send_tasks.register(qm, self.sessionmaker),
                    batch=self.concurrency,
                    slots=self.concurrency * 2,
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

    async def _lane(
        self, name: str, register: Callable[[QueueManager], None], *, batch: int, slots: int
    ) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            qm: QueueManager | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": "herald-worker"}
                )
                qm = QueueManager(Queries(AsyncpgDriver(conn)))
                register(qm)
                self._qms.append(qm)
                if self._stopping.is_set():
                    break
                backoff = 0.5
                log.info("worker: consuming the %s queue", name)
                await qm.run(
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
            if not self._stopping.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        """Finish jobs in flight, then return from `run`."""
        self._stopping.set()
        for qm in list(self._qms):
            qm.shutdown.set()
