"""Realtime events over socket.io against a live Herald: what, to whom, and only on commit."""

import asyncio

import httpx
import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.inbox import events
from app.users.models import User
from tests.conftest import ADMIN_TOKEN
from tests.factories import Creds
from tests.live import running_server
from tests.realtime.client import connected, refused

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def send(api: httpx.AsyncClient, creds: Creds, *recipients: str, title: str) -> None:
    body = {"notification": {"title": title}, "sendTo": {"recipients": list(recipients)}}
    response = await api.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text


async def first_id(api: httpx.AsyncClient, creds: Creds, user: str) -> int:
    page = (await api.get("/v3/notifications", headers=creds.user(user))).json()
    notification_id: int = page["data"][0]["id"]
    return notification_id


async def test_events_reach_only_their_user(live_server: str, live_app: Creds) -> None:
    async with (
        httpx.AsyncClient(base_url=live_server) as api,
        connected(live_server, api_key=live_app.api_key, user_id="ann") as ann,
        connected(live_server, api_key=live_app.api_key, user_id="bob") as bob,
    ):
        await send(api, live_app, "ann", title="for ann")
        new = await ann.wait_for("NEW_NOTIFICATION")
        assert new["notification"]["title"] == "for ann"
        assert new["notification"]["state"] == "unread"
        nid = new["notification"]["id"]
        assert nid == await first_id(api, live_app, "ann")

        user = live_app.user("ann")
        await api.post(f"/v3/notifications/{nid}/click", headers=user)
        assert await ann.wait_for("NOTIFICATION_READ") == {"id": nid}

        await api.post(f"/v3/notifications/{nid}/views", headers=user)
        assert await ann.wait_for("NOTIFICATION_SEEN") == {
            "unreadNotificationCount": 0,
            "notification": {"id": nid},
        }

        await api.put(f"/v3/notifications/{nid}/state", json={"state": "accepted"}, headers=user)
        interacted = await ann.wait_for("NOTIFICATION_INTERACTED")
        assert (interacted["id"], interacted["state"]) == (nid, "accepted")

        await api.delete(f"/v3/notifications/{nid}", headers=user)
        assert await ann.wait_for("NOTIFICATION_DELETED") == {"id": nid}

        await send(api, live_app, "ann", title="second")
        await ann.wait_for("NEW_NOTIFICATION")
        await api.post("/v3/notifications/markAllNotificationsAsRead", headers=user)
        assert await ann.wait_for("ALL_NOTIFICATION_READ") is None
        zero = {"unreadNotificationCount": 0}
        assert await ann.wait_for("NOTIFICATION_UNREAD_COUNT") == zero
        await api.post("/v3/notifications/markAllNotificationsAsDeleted", headers=user)
        assert await ann.wait_for("ALL_NOTIFICATION_DELETED") is None
        assert await ann.wait_for("NOTIFICATION_UNREAD_COUNT") == zero

        # bob heard nothing of ann's inbox; a send to him arrives, and only to him.
        await send(api, live_app, "bob", title="for bob")
        assert (await bob.wait_for("NEW_NOTIFICATION"))["notification"]["title"] == "for bob"
        await asyncio.sleep(0.3)
        assert bob.names() == []
        assert ann.names() == []


async def test_payloads_carry_the_keys_of_every_core(live_server: str, live_app: Creds) -> None:
    """@engagespot/core 1.3/1.4 read `description`, `created_at` and a seen item's id."""
    async with (
        httpx.AsyncClient(base_url=live_server) as api,
        connected(live_server, api_key=live_app.api_key, user_id="lee") as lee,
    ):
        ids = []
        for title in ("a", "b", "c"):
            body = {
                "notification": {"title": title, "message": f"{title}!"},
                "sendTo": {"recipients": ["lee"]},
            }
            response = await api.post("/v3/notifications", json=body, headers=live_app.backend())
            assert response.status_code == 202, response.text
            item = (await lee.wait_for("NEW_NOTIFICATION"))["notification"]
            assert (item["message"], item["description"]) == (f"{title}!", f"{title}!")
            assert item["created_at"] == item["createdAt"]
            assert item["createdAt"].endswith("Z")
            ids.append(item["id"])

        # A page seen in bulk: one NOTIFICATION_SEEN per item it changed, then the count.
        user = live_app.user("lee")
        marked = await api.post(
            "/v3/notifications/markAllNotificationsAsSeen",
            params={"pageNo": 1, "limit": 2},
            headers=user,
        )
        assert marked.json()["message"] == "2 notifications marked as seen"
        seen = [await lee.wait_for("NOTIFICATION_SEEN") for _ in range(2)]
        assert sorted(s["notification"]["id"] for s in seen) == sorted(ids[1:])
        assert {s["unreadNotificationCount"] for s in seen} == {1}
        assert await lee.wait_for("NOTIFICATION_UNREAD_COUNT") == {"unreadNotificationCount": 1}

        # Nothing newly seen: nothing announced (the sentinel is the next thing heard).
        await api.post(
            "/v3/notifications/markAllNotificationsAsSeen?pageNo=1&limit=2", headers=user
        )
        await api.put(f"/v3/notifications/{ids[0]}/state", json={"state": "done"}, headers=user)
        interacted = await lee.wait_for("NOTIFICATION_INTERACTED")
        assert (interacted["id"], interacted["description"]) == (ids[0], "a!")
        assert lee.names() == []


async def test_a_rolled_back_change_emits_nothing(
    live_server: str, live_app: Creds, live_database_url: str
) -> None:
    async with (
        httpx.AsyncClient(base_url=live_server) as api,
        connected(live_server, api_key=live_app.api_key, user_id="carol") as carol,
    ):
        await send(api, live_app, "carol", title="one")
        new = await carol.wait_for("NEW_NOTIFICATION")
        nid = new["notification"]["id"]
        user_id = await _user_id(live_database_url, live_app.id, "carol")

        engine = create_async_engine(live_database_url)
        try:
            async with engine.connect() as conn:
                async with AsyncSession(bind=conn) as session:
                    await events.publish(session, "NOTIFICATION_DELETED", [(user_id, nid)])
                    await session.rollback()
                async with AsyncSession(bind=conn) as session:
                    await events.publish(session, "NOTIFICATION_READ", [(user_id, nid)])
                    await session.commit()
        finally:
            await engine.dispose()
        assert await carol.wait_for("NOTIFICATION_READ") == {"id": nid}
        assert "NOTIFICATION_DELETED" not in carol.names()


async def _user_id(database_url: str, app_id: int, identifier: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                select(User.id).where(User.app_id == app_id, User.identifier == identifier)
            )
    finally:
        await engine.dispose()
    assert found is not None
    return int(found)


async def test_two_processes_share_events(
    live_server: str, live_app: Creds, live_database_url: str
) -> None:
    with running_server(live_database_url, admin_token=ADMIN_TOKEN) as second:
        async with (
            httpx.AsyncClient(base_url=second) as api,
            connected(live_server, api_key=live_app.api_key, user_id="dan") as dan,
        ):
            await send(api, live_app, "dan", title="via the second process")
            new = await dan.wait_for("NEW_NOTIFICATION")
            assert new["notification"]["title"] == "via the second process"


async def test_refusals(live_server: str, live_app: Creds) -> None:
    key = live_app.api_key
    assert "Invalid API key" in await refused(live_server, query="apiKey=nope&userId=u")
    assert await refused(live_server, query=f"apiKey={key}")

    async with httpx.AsyncClient(base_url=live_server, headers=ADMIN) as admin:
        pair = (await admin.post(f"/admin/apps/{live_app.id}/signing-keys")).json()
        other = (await admin.post("/admin/apps", json={"name": "forger"})).json()
        forger_key = (await admin.post(f"/admin/apps/{other['id']}/signing-keys")).json()
        await admin.patch(f"/admin/apps/{live_app.id}", json={"hmacEnabled": True})

        assert "SIGNATURE" in await refused(
            live_server, query=f"apiKey={key}&userId=u&userSignature=forged"
        )
        assert "SIGNATURE" in await refused(live_server, query=f"apiKey={key}&userId=u")
        signed = live_app.signed("u")["X-ENGAGESPOT-USER-SIGNATURE"]
        async with connected(live_server, api_key=key, user_id="u", signature=signed):
            pass

        await admin.patch(f"/admin/apps/{live_app.id}", json={"secureMode": True})
        assert "secure mode" in await refused(live_server, query=f"apiKey={key}&userId=u")
        forged = jwt.encode(
            {"sub": "user:u", "apiKey": key}, forger_key["privateKey"], algorithm="RS256"
        )
        assert "Invalid user token" in await refused(
            live_server, query=f"apiKey={key}&userId=u", token=forged
        )
        good = jwt.encode({"sub": "user:u", "apiKey": key}, pair["privateKey"], algorithm="RS256")
        async with (
            httpx.AsyncClient(base_url=live_server) as api,
            connected(live_server, api_key=key, user_id="u", token=good) as u,
        ):
            await send(api, live_app, "u", title="secure")
            assert (await u.wait_for("NEW_NOTIFICATION"))["notification"]["title"] == "secure"
