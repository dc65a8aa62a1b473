"""Helpers for tests against live Herald processes: admin status, bounded waits, SQL counts."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.server import stop_process
from tests import db
from tests.conftest import ADMIN_TOKEN, TEST_SECRET_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call `probe` until it returns something other than None; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def request_status(client: httpx.AsyncClient, app_id: int, request_id: str) -> dict[str, Any]:
    """GET /admin/apps/{id}/requests/{requestId}."""
    response = await client.get(f"/admin/apps/{app_id}/requests/{request_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    client: httpx.AsyncClient,
    app_id: int,
    request_id: str,
    wanted: str,
    *,
    within: float,
) -> dict[str, Any]:
    """Poll a send's admin status until it is `wanted`; fail on timeout or another final state."""

    async def probe() -> dict[str, Any] | None:
        status = await request_status(client, app_id, request_id)
        if status["status"] == wanted:
            return status
        final = {"done", "cancelled", "failed"} - {wanted}
        assert status["status"] not in final, status
        return None

    return await wait_for(probe, within=within, what=f"request {request_id} to be {wanted}")


async def send(client: httpx.AsyncClient, headers: dict[str, str], body: object) -> str:
    """POST /v3/notifications; return the requestId of the 202."""
    response = await client.post("/v3/notifications", json=body, headers=headers)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def deliveries(engine: AsyncEngine, request_id: str) -> dict[str, int]:
    """identifier -> inbox rows written for one send."""
    found = await rows(
        engine,
        "SELECT u.identifier, count(*) FROM notifications n JOIN users u ON u.id = n.user_id "
        "WHERE n.request_id = CAST(:rid AS uuid) GROUP BY u.identifier",
        rid=request_id,
    )
    return {identifier: int(n) for identifier, n in found}


async def topic_reach(engine: AsyncEngine, request_id: str, topic_id: int) -> tuple[int, int, int]:
    """(inbox rows, distinct users, topic subscribers without a row) of one topic send."""
    [(total, distinct, missing)] = await rows(
        engine,
        """
        SELECT count(*), count(DISTINCT n.user_id),
               (SELECT count(*) FROM topic_subscriptions s
                WHERE s.topic_id = :topic AND NOT EXISTS (
                    SELECT 1 FROM notifications m
                    WHERE m.request_id = CAST(:rid AS uuid) AND m.user_id = s.user_id))
        FROM notifications n WHERE n.request_id = CAST(:rid AS uuid)
        """,
        rid=request_id,
        topic=topic_id,
    )
    return int(total), int(distinct), int(missing)


class WorkerProcess:
    """`herald worker` (python -m app.cli worker --concurrency 2) as a child process, logging
    to the scratch directory; `env` adds to (or overrides) the inherited environment."""

    def __init__(self, database_url: str, env: Mapping[str, str] | None = None) -> None:
        self.log = db.scratch_dir() / "worker.log"
        full_env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_ADMIN_TOKEN": ADMIN_TOKEN,
            "HERALD_LOG_LEVEL": "info",
            "HERALD_SECRET_KEY": TEST_SECRET_KEY,
            **(env or {}),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker", "--concurrency", "2"],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, the job stays picked with its last heartbeat."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]
