"""Queue workers: PgQueuer consumers that wait on LISTEN, not on a polling loop.

Two lanes, each its own PgQueuer consumer on its own connection: the send pipeline's fan-out
(with the periodic retention purge), and deliveries to providers. A slow or paused provider
fills only the delivery lane's slots, so it never holds up inbox rows."""

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import pickle
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import asyncpg
from pgqueuer import PgQueuer, QueueManager
from pgqueuer.core.sm import SchedulerManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logs
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.delivery import tasks as delivery_tasks
from app.delivery.engine import Engine
from app.kit import affinity
from app.retention import tasks as retention_tasks
from app.retention.service import Policy
from app.sends import tasks as send_tasks

log = logging.getLogger("herald.worker")
T = TypeVar("T")
# What a worker process says on its stdout once it is up, and how long the server waits.
READY = b"ready\n"
READY_SECONDS = 30


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


class WorkerProcess:
    """The in-process worker of `herald serve`, run as its child process.

    A fan-out batch is tens of milliseconds of Python (5,000 rows to route, write and
    announce). On a thread of the server it shared the server's GIL: each time the request
    loop gave the GIL up (every socket read and write), the worker thread took it and held
    it for up to the interpreter's switch interval, several times per request, so /health's
    p99 during a fan-out was many times its idle p99 (bench/RESULTS.md). A process has its
    own interpreter; the kernel shares the cores, with no convoy.

    It lives and dies with the server: started in its lifespan, stopped (SIGTERM: finish the
    jobs in flight) when the server stops, killed by the kernel if the server is killed
    (PR_SET_PDEATHSIG), restarted if it dies on its own. It logs to the server's stderr, with
    the server's log settings, and reads the server's settings, sent to it on its stdin."""

    def __init__(
        self,
        url: str,
        *,
        settings: Settings | None = None,
        retention: Policy | None = None,
        pool_size: int = 4,
    ):
        self.url = url
        self.settings = settings or get_settings()
        self.retention = retention
        self.pool_size = pool_size
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="herald-worker-process")

    async def _spawn(self) -> None:
        # A pinned server's worker goes back to every CPU (app/kit/affinity.py): fan-outs are
        # its work, not the requests' of the process that started it.
        job = pickle.dumps(
            (
                self.url,
                self.settings,
                self.retention,
                self.pool_size,
                os.getpid(),
                affinity.unpinned(),
            )
        )
        # The server's own interpreter and module path: `-m` finds the same `app` it runs.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(job)
        await process.stdin.drain()
        process.stdin.close()
        # As the worker thread did: the server is ready once its worker is (imports done,
        # engine made), so what a fresh server does next is not the worker's start-up.
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), timeout=READY_SECONDS)
        except TimeoutError:
            ready = b""
        if ready != READY:
            log.error("worker: process %d did not start (%r)", process.pid, ready)

    async def _supervise(self) -> None:
        backoff = 0.5
        while self._process is not None:
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("worker: process exited with code %s; starting another", code)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            if self._stopping:
                return
            await self._spawn()

    async def stop(self, *, grace: float = 30) -> None:
        """Finish the jobs in flight, then end the process; kill it after `grace` seconds."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=grace)
            except TimeoutError:
                log.warning(
                    "worker: jobs still running after %.0f s; leaving them to recovery", grace
                )
                process.kill()
                await process.wait()
        if self._supervisor is not None:
            await self._supervisor


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when the server dies, as the worker thread died
    with it: a killed server's jobs are recovered by their stale heartbeats, in any case."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the line above took effect
        os._exit(1)


def _child_main() -> None:
    # From the server that started this process (WorkerProcess._spawn), on a private pipe.
    url, settings, retention, pool_size, parent, cpus = pickle.load(sys.stdin.buffer)  # noqa: S301
    _die_with_parent(parent)
    affinity.restore(cpus)
    logs.configure(settings.log_level)
    # Ctrl-C reaches the whole process group: the server's shutdown stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()
    asyncio.run(_run_child(url, settings, retention, pool_size, parent))


async def _run_child(
    url: str, settings: Settings, retention: Policy | None, pool_size: int, parent: int
) -> None:
    engine = make_engine(url, pool_size=pool_size)
    worker = Worker(
        url.replace("+asyncpg", "", 1),
        make_sessionmaker(engine),
        settings=settings,
        retention=retention,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    orphaned = loop.create_task(_orphaned(parent))
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    # The server reads stdout only up to READY: anything printed later goes to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        await worker.run()
    finally:
        orphaned.cancel()
        await engine.dispose()


async def _orphaned(parent: int) -> None:
    """Belt and braces for PR_SET_PDEATHSIG (Linux only, and tied to the thread that
    started this process): a worker whose server is gone ends as if killed with it."""
    while os.getppid() == parent:  # noqa: ASYNC110 (nothing to wait on but a poll)
        await asyncio.sleep(1.0)
    log.error("worker: the server (pid %d) is gone; exiting", parent)
    os._exit(1)


if __name__ == "__main__":
    _child_main()
