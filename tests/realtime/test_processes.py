"""`herald serve --workers 2`: two processes on one port, live events across them, and a
supervisor that stops, reports and replaces its children."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bench.server import free_port
from tests.conftest import ADMIN_TOKEN
from tests.live import running_process
from tests.realtime.client import connected
from tests.realtime.procs import (
    admin_app,
    children,
    send,
    sockets_here,
    through_process_with,
    wait_for_children,
)
from tests.sdk import node
from tests.sdk import test_legacy_core as legacy

TWO = ["--workers", "2"]


async def test_events_cross_from_one_process_to_the_other(live_database_url: str) -> None:
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=TWO) as (base, proc):
        assert len(wait_for_children(proc.pid, 2)) == 2
        creds = admin_app(base, ADMIN_TOKEN)
        async with connected(base, api_key=creds.api_key, user_id="ann") as ann:
            # A connection to the process holding ann's socket, then one to the other.
            async with through_process_with(base, 1) as same:
                await send(same, creds, "ann", "through the same process")
                new = await ann.wait_for("NEW_NOTIFICATION")
                assert new["notification"]["title"] == "through the same process"
            async with through_process_with(base, 0) as other:
                await send(other, creds, "ann", "through the other process")
                new = await ann.wait_for("NEW_NOTIFICATION")
                assert new["notification"]["title"] == "through the other process"
                # A change made there reaches ann too, loaded by ann's process.
                nid = new["notification"]["id"]
                user = creds.user("ann")
                response = await other.post(f"/v3/notifications/{nid}/click", headers=user)
                assert response.status_code == 200, response.text
                assert await ann.wait_for("NOTIFICATION_READ") == {"id": nid}
        # A long-polling session's requests would land on either process: refused plainly.
        async with httpx.AsyncClient(base_url=base) as api:
            response = await api.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert response.status_code == 400, response.text


def test_sigterm_stops_every_child_and_exits_0(live_database_url: str) -> None:
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=TWO) as (base, proc):
        kids = wait_for_children(proc.pid, 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
        for kid in kids:
            assert not Path(f"/proc/{kid}").exists() or _zombie(kid), kid
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health", timeout=2)


async def test_a_child_that_dies_is_reported_and_replaced(live_database_url: str) -> None:
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=TWO) as (base, proc):
        kids = wait_for_children(proc.pid, 2)
        victim = min(kids)
        os.kill(victim, signal.SIGKILL)
        now = wait_for_children(proc.pid, 2, other_than={victim})
        assert len(now & kids) == 1
        # Both serve: connections reach a process with a socket and one without.
        creds = admin_app(base, ADMIN_TOKEN)
        async with connected(base, api_key=creds.api_key, user_id="bo") as bo:
            async with through_process_with(base, 0) as other:
                await send(other, creds, "bo", "after the restart")
                assert (await bo.wait_for("NEW_NOTIFICATION"))["notification"]["title"] == (
                    "after the restart"
                )
            async with through_process_with(base, 1) as same:
                assert await sockets_here(same) == 1
        assert proc.poll() is None


async def test_pinned_children_each_keep_a_cpu_of_their_own_and_their_workers_any(
    live_database_url: str,
) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("pinning two processes apart needs two CPUs")
    args = [*TWO, "--pin-cpus"]
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=args) as (base, proc):
        kids = wait_for_children(proc.pid, 2)
        # One child on each of the first two CPUs (which child got which is not pid order
        # once pids wrap, so it is read, not assumed).
        cpu_of = {kid: os.sched_getaffinity(kid) for kid in kids}
        assert sorted(map(sorted, cpu_of.values())) == [[allowed[0]], [allowed[1]]]
        for kid in kids:
            # The queue worker each child starts runs on every CPU the server may use, once
            # it has read its orders (before it says it is ready; the other child may not
            # be ready yet when the server first answers).
            (queue_worker,) = wait_for_children(kid, 1)
            assert _affinity_becomes(queue_worker, set(allowed))
        assert os.sched_getaffinity(proc.pid) == set(allowed)
        # A replacement takes the dead child's slot, and so its CPU.
        victim, survivor = sorted(kids)
        os.kill(victim, signal.SIGKILL)
        (replacement,) = wait_for_children(proc.pid, 2, other_than={victim}) - {survivor}
        assert _affinity_becomes(replacement, cpu_of[victim])  # pinned just after its fork
        creds = admin_app(base, ADMIN_TOKEN)
        async with connected(base, api_key=creds.api_key, user_id="cy") as cy:
            for sockets in (0, 1):
                async with through_process_with(base, sockets) as api:
                    await send(api, creds, "cy", f"pinned, through a process with {sockets}")
                    new = await cy.wait_for("NEW_NOTIFICATION")
                    assert (
                        new["notification"]["title"] == f"pinned, through a process with {sockets}"
                    )


async def test_one_pinned_process_by_the_setting_and_its_worker_on_every_cpu(
    live_database_url: str,
) -> None:
    allowed = set(os.sched_getaffinity(0))
    env = {"HERALD_PIN_CPUS": "true"}
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, extra_env=env) as (
        base,
        proc,
    ):
        assert os.sched_getaffinity(proc.pid) == {min(allowed)}
        (queue_worker,) = wait_for_children(proc.pid, 1)
        assert os.sched_getaffinity(queue_worker) == allowed
        creds = admin_app(base, ADMIN_TOKEN)
        async with httpx.AsyncClient(base_url=base) as api:
            await send(api, creds, "di", "from a pinned process")
            response = await api.get("/v3/notifications", headers=creds.user("di"))
            assert response.status_code == 200, response.text
            assert response.json()["data"][0]["title"] == "from a pinned process"


def _affinity_becomes(pid: int, cpus: set[int], *, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while os.sched_getaffinity(pid) != cpus:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_children_that_keep_dying_stop_the_server_with_exit_1(live_database_url: str) -> None:
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=TWO) as (_, proc):
        kids = wait_for_children(proc.pid, 2)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        data_dir = next(e for e in environ if e.startswith(b"HERALD_DATA_DIR=")).split(b"=", 1)[1]
        dead: set[int] = set()
        # Five deaths within a minute are replaced; the sixth stops the server.
        for _ in range(5):
            victim = min(kids)
            os.kill(victim, signal.SIGKILL)
            dead.add(victim)
            kids = wait_for_children(proc.pid, 2, other_than=dead)
        os.kill(min(kids), signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
        log = (Path(data_dir.decode()) / "server.log").read_text()
        assert "the 6th death within 60 s; stopping" in log, log[-3000:]
        assert log.count("starting another") == 5, log[-3000:]


def test_embedded_database_is_shared_by_the_children() -> None:
    data = Path(tempfile.mkdtemp(prefix="herald-procs-"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD_")} | {
        "HERALD_DATA_DIR": str(data),
        "HERALD_ADMIN_TOKEN": ADMIN_TOKEN,
        "HERALD_LOG_LEVEL": "warning",
    }
    log = data / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *TWO],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _ready(base, proc, log)
        serving = {k for k in children(proc.pid) if b"app.cli" in _cmdline(k)}
        assert len(serving) == 2, serving
        assert (data / "pgdata" / "postmaster.pid").exists()
        creds = admin_app(base, ADMIN_TOKEN)
        # Every new connection may reach either child: all of them see the app.
        for _ in range(10):
            with httpx.Client(base_url=base) as api:
                response = api.get("/v3/notifications", headers=creds.user("eve"))
                assert response.status_code == 200, response.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert not (data / "pgdata" / "postmaster.pid").exists(), "PostgreSQL left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.node
@pytest.mark.live
def test_the_sdks_stay_live_with_two_processes(live_database_url: str) -> None:
    """@engagespot/core 3.0.1 and 1.4.2, bundled unchanged: their REST calls land on either
    process, their WebSocket on one, and every event still reaches them."""
    js = node.prepare()
    with running_process(live_database_url, admin_token=ADMIN_TOKEN, args=TWO) as (base, proc):
        wait_for_children(proc.pid, 2)
        creds = admin_app(base, ADMIN_TOKEN)
        out = js.run(
            "core_realtime",
            node.config(base, creds, HERALD_USER_ID="rt-ann", HERALD_OTHER_USER_ID="rt-bob"),
        )
        assert out["failures"] == []
        assert out["received"]["title"] == "realtime hello"
        assert out["read"] == {"id": out["received"]["id"]}
        assert out["deleted"] == {"id": out["received"]["id"]}
        assert out["otherHeard"] == []
        category_id = legacy.category(base, creds)
        out = js.run(
            "legacy_core_1.4.2",
            node.config(base, creds, HERALD_USER_ID="legacy", HERALD_CATEGORY_ID=str(category_id)),
        )
        legacy.check_flow(out, category_id=category_id)
