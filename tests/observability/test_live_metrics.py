"""/metrics of a real `herald serve` (socket.io in front of the API): sockets, sends, their
groups and the read pool."""

import asyncio

import httpx
import pytest

from tests.factories import Creds
from tests.observability.scrape import Series, parse, value
from tests.queue.support import wait_for
from tests.realtime.client import connected

pytestmark = pytest.mark.live


async def _scrape(api: httpx.AsyncClient) -> Series:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


async def test_connected_sockets_are_counted(live_server: str, live_app: Creds) -> None:
    async with httpx.AsyncClient(base_url=live_server) as api:
        before = value(await _scrape(api), "herald_realtime_sockets")

        async def sockets(wanted: float) -> bool | None:
            return True if value(await _scrape(api), "herald_realtime_sockets") == wanted else None

        async with (
            connected(live_server, api_key=live_app.api_key, user_id="ann"),
            connected(live_server, api_key=live_app.api_key, user_id="bob"),
        ):
            assert value(await _scrape(api), "herald_realtime_sockets") == before + 2
        # The server notices the disconnects on its own time: wait for the count to drop.
        await wait_for(lambda: sockets(before), within=10, what="the sockets to be gone")


async def test_sends_through_the_served_app_are_counted(live_server: str, live_app: Creds) -> None:
    async with httpx.AsyncClient(base_url=live_server) as api:
        before = value(await _scrape(api), "herald_sends_accepted_total")
        body = {"notification": {"title": "counted"}, "sendTo": {"recipients": ["ann"]}}
        sent = await api.post("/v3/notifications", json=body, headers=live_app.backend())
        assert sent.status_code == 202, sent.text
        after = await _scrape(api)
        assert value(after, "herald_sends_accepted_total") == before + 1
        assert value(after, "herald_queue_stats_up") == 1
        assert value(after, "herald_db_pool_size") == 10


async def test_groups_of_sends_and_the_read_pool_are_reported(
    live_server: str, live_app: Creds
) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=60) as api:
        before = await _scrape(api)
        bodies = [
            {"notification": {"title": f"g{i}"}, "sendTo": {"recipients": [f"grouped{i}"]}}
            for i in range(30)
        ]
        answers = await asyncio.gather(
            *(api.post("/v3/notifications", json=b, headers=live_app.backend()) for b in bodies)
        )
        assert [a.status_code for a in answers] == [202] * 30
        page = await api.get("/v3/notifications", headers=live_app.user("grouped0"))
        assert page.status_code == 200, page.text
        after = await _scrape(api)

    def grown(name: str) -> float:
        return value(after, name) - value(before, name)

    # Plain sends, all of them written by groups; at once, some shared one.
    assert grown("herald_send_group_sends_total") == 30
    assert 1 <= grown("herald_send_groups_total") < 30
    # The page was read through the read pool, which has its connection back.
    assert value(after, "herald_read_pool_open") >= 1
    assert value(after, "herald_read_pool_in_use") == 0
    assert value(after, "herald_read_pool_waiting") == 0
