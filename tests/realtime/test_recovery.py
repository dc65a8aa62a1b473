"""Dropped database connections recover by themselves: the LISTEN connection and the worker's."""

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Creds
from tests.queue.support import wait_for, wait_status
from tests.realtime.client import connected


async def _terminate(engine: AsyncEngine, application: str) -> int:
    """Kill the backends of one kind of Herald connection, as a database restart would."""
    async with engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": application},
        )
    return int(killed or 0)


async def test_events_resume_after_the_listen_connection_drops(
    live_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    async with (
        httpx.AsyncClient(base_url=live_server) as api,
        connected(live_server, api_key=live_app.api_key, user_id="phoenix") as phoenix,
    ):
        assert await _terminate(live_engine, "herald-listen") >= 1

        async def heard() -> dict[str, object] | None:
            body = {"notification": {"title": "again"}, "sendTo": {"recipients": ["phoenix"]}}
            sent = await api.post("/v3/notifications", json=body, headers=live_app.backend())
            assert sent.status_code == 202, sent.text
            try:
                event: dict[str, object] = await phoenix.wait_for("NEW_NOTIFICATION", within=1)
            except TimeoutError:
                return None
            return event

        event = await wait_for(heard, within=30, what="events after the LISTEN reconnect")
        assert event["notification"]["title"] == "again"  # type: ignore[index]


async def test_the_worker_resumes_after_its_connection_drops(
    live_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    assert await _terminate(live_engine, "herald-worker") >= 1
    async with httpx.AsyncClient(base_url=live_server) as api:
        h = live_app.backend()
        topic = (await api.post("/v3/topics", json={"name": "Recovery"}, headers=h)).json()
        users = [{"identifier": f"r{i}"} for i in range(50)]
        joined = await api.post(f"/v3/topics/{topic['id']}/users", json={"users": users}, headers=h)
        assert joined.status_code == 200, joined.text
        body = {"notification": {"title": "after"}, "sendTo": {"topics": ["recovery"]}}
        sent = await api.post("/v3/notifications", json=body, headers=h)
        assert sent.status_code == 202, sent.text
        status = await wait_status(api, live_app.id, sent.json()["requestId"], "done", within=60)
        assert status["delivered"] == 50
