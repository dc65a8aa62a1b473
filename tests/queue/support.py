"""Helpers for tests against live Herald processes: admin status, bounded waits, SQL counts."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ADMIN_TOKEN

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
