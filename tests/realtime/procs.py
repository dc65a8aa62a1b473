"""Helpers for tests of `herald serve --workers N`: which child a connection reached, the
children of a server, and a send made through a chosen child."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.factories import Creds

SOCKETS = re.compile(r"^herald_realtime_sockets (\d+(?:\.\d+)?)$", re.MULTILINE)


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def wait_for_children(
    pid: int, count: int, *, other_than: frozenset[int] | set[int] = frozenset()
) -> set[int]:
    """Wait until `pid` has `count` children, none of them in `other_than`; return them."""
    deadline = time.monotonic() + 30
    while True:
        now = children(pid)
        if len(now) == count and not now & other_than:
            return now
        assert time.monotonic() < deadline, f"children of {pid}: {now}"
        time.sleep(0.05)


async def sockets_here(api: httpx.AsyncClient) -> int:
    """The socket.io clients of the process this client's connection reached."""
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    match = SOCKETS.search(response.text)
    assert match is not None, response.text
    return int(float(match[1]))


@asynccontextmanager
async def through_process_with(base: str, sockets: int) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose one kept-alive connection reached a process holding `sockets`
    socket.io clients.

    Which child accepts a new connection is the kernel's choice, and a child just started
    to replace another accepts nothing until its app is up: connections are opened a few at
    a time, at once, until one lands where it should (or 30 s have passed)."""
    deadline = time.monotonic() + 30
    while True:
        clients = [
            httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=1))
            for _ in range(4)
        ]
        try:
            found = await asyncio.gather(*(sockets_here(c) for c in clients))
            if sockets in found:
                api = clients[found.index(sockets)]
                yield api
                # Still the same connection, so still that process.
                assert await sockets_here(api) == sockets
                return
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        assert time.monotonic() < deadline, (
            f"no connection reached a process with {sockets} sockets"
        )
        await asyncio.sleep(0.1)


async def send(api: httpx.AsyncClient, creds: Creds, user: str, title: str) -> None:
    body = {"notification": {"title": title}, "sendTo": {"recipients": [user]}}
    response = await api.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text


def admin_app(base: str, admin_token: str) -> Creds:
    response = httpx.post(
        f"{base}/admin/apps",
        json={"name": "procs"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Creds(body["id"], body["apiKey"], body["apiSecret"])
