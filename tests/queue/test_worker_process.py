"""`herald serve` runs its queue worker as a child process (app.worker.WorkerProcess) that
starts and stops with the server, dies with it, and is started again if it dies alone."""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from app.runtime import migrate
from tests import db
from tests.conftest import ADMIN_TOKEN
from tests.live import running_process

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
]
T = TypeVar("T")


@pytest.fixture(scope="module")
def worker_database(server_url: str) -> Iterator[str]:
    name = f"herald_test_worker_process_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    migrate(url)
    yield url
    asyncio.run(db.drop(server_url, name))


def _workers(parent: int) -> list[int]:
    """Live (not zombie) `python -m app.worker` children of `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and state != "Z" and b"app.worker" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _until(probe: Callable[[], T], *, within: float, what: str) -> T:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {within} s")
        time.sleep(0.05)


def test_the_worker_is_one_child_that_stops_with_the_server(worker_database: str) -> None:
    with running_process(worker_database, admin_token=ADMIN_TOKEN) as (_base, proc):
        (worker,) = _until(lambda: _workers(proc.pid), within=30, what="worker process")
        proc.send_signal(signal.SIGTERM)
        # uvicorn ends by raising the signal it caught again, once shut down.
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        # The server waits for its worker before it exits.
        assert not _alive(worker)


def test_a_killed_server_takes_its_worker_with_it(worker_database: str) -> None:
    with running_process(worker_database, admin_token=ADMIN_TOKEN) as (_base, proc):
        (worker,) = _until(lambda: _workers(proc.pid), within=30, what="worker process")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _until(lambda: not _alive(worker), within=10, what="end of the orphaned worker")


def test_a_worker_that_dies_is_started_again(worker_database: str) -> None:
    with running_process(worker_database, admin_token=ADMIN_TOKEN) as (_base, proc):
        (first,) = _until(lambda: _workers(proc.pid), within=30, what="worker process")
        os.kill(first, signal.SIGKILL)
        (second,) = _until(
            lambda: [p for p in _workers(proc.pid) if p != first],
            within=30,
            what="second worker process",
        )
        assert proc.poll() is None
        assert second != first


def test_no_worker_starts_no_child(worker_database: str) -> None:
    with running_process(worker_database, admin_token=ADMIN_TOKEN, args=["--no-worker"]) as (
        _base,
        proc,
    ):
        # The worker would have been started in the lifespan, before /ready answered.
        assert _workers(proc.pid) == []
