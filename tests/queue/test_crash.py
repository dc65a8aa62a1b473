"""Separate worker processes: a worker killed mid fan-out loses and repeats nothing, and an
idle server with its worker stays idle. Runs on a database of its own, so no other test's
worker takes these jobs."""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine
from tests import db
from tests.conftest import ADMIN_TOKEN
from tests.live import running_process, running_server
from tests.queue.support import (
    ADMIN,
    WorkerProcess,
    rows,
    scalar,
    send,
    topic_reach,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.live

SUBSCRIBERS = 30_000
# Worker(heartbeat=10 s): a job whose worker stopped beating that long ago is picked again
# by the next dequeue, and an idle worker dequeues at least once a heartbeat.
HEARTBEAT = 10


@pytest.fixture(scope="module")
def crash_database(server_url: str) -> Iterator[str]:
    name = f"herald_test_crash_{os.getpid()}"
    with db.migrated(server_url, name) as url:
        yield url


@pytest.fixture
async def crash_engine(crash_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(crash_database, pool_size=2)
    yield engine
    await engine.dispose()


async def _progress(engine: AsyncEngine, request_id: str) -> tuple[str, int, int]:
    """(status, cursor, inbox rows) of a send, read from the database."""
    [(status, cursor, written)] = await rows(
        engine,
        "SELECT r.status, r.cursor, (SELECT count(*) FROM notifications n "
        "WHERE n.request_id = r.id) FROM notification_requests r WHERE r.id = CAST(:rid AS uuid)",
        rid=request_id,
    )
    return str(status), int(cursor), int(written)


async def _subscribe_many(engine: AsyncEngine, app_id: int, topic_id: int, n: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                WITH created AS (
                    INSERT INTO users (app_id, identifier)
                    SELECT :app, 'member-' || lpad(CAST(i AS text), 5, '0')
                    FROM generate_series(1, :n) AS i
                    RETURNING id)
                INSERT INTO topic_subscriptions (topic_id, user_id)
                SELECT :topic, id FROM created
                """
            ),
            {"app": app_id, "topic": topic_id, "n": n},
        )


async def _subscribers_up_to(engine: AsyncEngine, topic_id: int, cursor: int) -> int:
    n = await scalar(
        engine,
        "SELECT count(*) FROM topic_subscriptions WHERE topic_id = :t AND user_id <= :c",
        t=topic_id,
        c=cursor,
    )
    return int(n)


@dataclass(frozen=True)
class CrashApp:
    id: int
    headers: dict[str, str]


@pytest.fixture
async def api(crash_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """`herald serve --no-worker` on the crash database, and a client for it."""
    with running_server(crash_database, admin_token=ADMIN_TOKEN, args=["--no-worker"]) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            yield client


@pytest.fixture
async def crash_app(api: httpx.AsyncClient) -> CrashApp:
    created = await api.post("/admin/apps", json={"name": "crash"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    app = created.json()
    return CrashApp(
        app["id"],
        {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-API-SECRET": app["apiSecret"]},
    )


@pytest.fixture
def workers(crash_database: str) -> Iterator[Callable[[], WorkerProcess]]:
    """Start `herald worker` processes on the crash database; all are stopped afterwards."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(WorkerProcess(crash_database))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


async def test_a_worker_killed_mid_fan_out_is_finished_by_another_exactly_once(
    api: httpx.AsyncClient,
    crash_app: CrashApp,
    crash_engine: AsyncEngine,
    workers: Callable[[], WorkerProcess],
) -> None:
    engine = crash_engine
    topic = await api.post("/v3/topics", json={"name": "Everyone"}, headers=crash_app.headers)
    assert topic.status_code == 201, topic.text
    topic_id = topic.json()["id"]
    # Subscribing through the API is covered elsewhere (10,000 a call); here the audience is
    # written in one statement to keep the test short.
    await _subscribe_many(engine, crash_app.id, topic_id, SUBSCRIBERS)

    request_id = await send(
        api,
        crash_app.headers,
        {"notification": {"title": "All hands"}, "sendTo": {"topics": ["everyone"]}},
    )
    # --no-worker: the server leaves the topic to the workers.
    await asyncio.sleep(0.5)
    assert await _progress(engine, request_id) == ("queued", 0, 0)

    first = workers()

    async def partly_done() -> tuple[str, int, int] | None:
        assert first.proc.poll() is None, first.output()
        progress = await _progress(engine, request_id)
        return progress if progress[1] > 0 else None

    await wait_for(partly_done, within=30, what="the first batch", interval=0.01)
    first.kill()
    killed_at = time.monotonic()

    status, cursor, written = await _progress(engine, request_id)
    assert status == "fanning_out"
    assert 0 < written < SUBSCRIBERS
    # The cursor and the rows behind it were committed together.
    assert written == await _subscribers_up_to(engine, topic_id, cursor)
    assert await rows(
        engine,
        "SELECT status::text FROM pgqueuer "
        "WHERE convert_from(payload, 'UTF8')::jsonb->>'requestId' = :rid",
        rid=request_id,
    ) == [("picked",)]
    # Nobody else is working on it.
    await asyncio.sleep(1)
    assert await _progress(engine, request_id) == (status, cursor, written)

    # Started now, this worker is already running when the heartbeat goes stale (as the
    # other workers of a deployment would be): it takes the job over within two heartbeats.
    workers()
    done = await wait_status(api, crash_app.id, request_id, "done", within=2 * HEARTBEAT + 10)
    recovered = time.monotonic() - killed_at

    assert (done["delivered"], done["attempts"], done["error"]) == (SUBSCRIBERS, 0, None)
    total, distinct, missing = await topic_reach(engine, request_id, topic_id)
    assert (total, distinct, missing) == (SUBSCRIBERS, SUBSCRIBERS, 0)
    print(
        f"\nkilled after {written} of {SUBSCRIBERS} rows; "
        f"another worker finished {recovered:.1f}s after the kill"
    )


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its live children (the worker process), from
    /proc/<pid>/stat."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After "pid (comm) ", field 3 (state) is index 0: ppid is field 4, utime field 14,
        # stime field 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry.name) == pid or int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_an_idle_server_with_its_worker_uses_under_2_percent_of_a_core(
    crash_database: str,
) -> None:
    with running_process(crash_database, admin_token=ADMIN_TOKEN) as (base, proc):
        assert httpx.get(f"{base}/ready").status_code == 200
        time.sleep(1)  # start-up settles: the worker connects and LISTENs
        before, started = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(10)
        used, elapsed = _cpu_seconds(proc.pid) - before, time.monotonic() - started
        assert proc.poll() is None
    print(f"\nidle herald serve: {used:.2f}s CPU in {elapsed:.1f}s ({100 * used / elapsed:.2f}%)")
    # 0.4-0.9 % on the Intel machines of earlier stops; 1.2-1.4 % on a Firecracker VM where
    # each timer wake-up costs more, nearly all of it the worker's, whose queue library
    # (pgqueuer's job-log buffer) wakes ten times a second. A polling loop of Herald's own
    # (a 10 ms poll, say) would cost several times that.
    assert used / elapsed < 0.02
