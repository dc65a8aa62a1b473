"""Tenants and users never reach each other's rows, whatever ids they guess."""

from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import Creds, send_body

# Every route that names one notification, with the body it needs.
PER_ID: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/v3/notifications/{id}", None),
    ("DELETE", "/v3/notifications/{id}", None),
    ("POST", "/v3/notifications/{id}/click", {"read": True}),
    ("PATCH", "/v3/notifications/{id}/click", {"read": True}),
    ("POST", "/v3/notifications/{id}/views", None),
    ("DELETE", "/v3/notifications/{id}/views", None),
    ("DELETE", "/v3/notifications/{id}/reads", None),
    ("PUT", "/v3/notifications/{id}/state", {"state": "clicked", "data": {"x": 1}}),
    ("PUT", "/v3/notifications/{id}/state", {"state": "archived", "delete": True}),
]


@dataclass
class World:
    a: Creds
    b: Creds
    ids: dict[tuple[int, str], list[int]]  # (app id, user) -> notification ids

    def of(self, creds: Creds, user: str) -> list[int]:
        return self.ids[(creds.id, user)]


async def ids_of(client: httpx.AsyncClient, creds: Creds, user: str) -> list[int]:
    r = await client.get(
        "/v3/notifications", params={"userIdentifier": user}, headers=creds.backend()
    )
    assert r.status_code == 200, r.text
    return [n["id"] for n in r.json()["data"]]


@pytest.fixture
async def world(client: httpx.AsyncClient, creds: Creds, other: Creds) -> World:
    """App A (`creds`) and app B (`other`) both have a user `alice`; B also has `bob`."""
    for app, users in ((creds, ("alice", "carol")), (other, ("alice", "bob"))):
        for title in ("one", "two"):
            r = await client.post(
                "/v3/notifications", json=send_body(*users, title=title), headers=app.backend()
            )
            assert r.status_code == 202, r.text
    ids = {
        (app.id, user): await ids_of(client, app, user)
        for app, users in ((creds, ("alice", "carol")), (other, ("alice", "bob")))
        for user in users
    }
    assert all(len(v) == 2 for v in ids.values())
    return World(creds, other, ids)


async def snapshot(session: AsyncSession, world: World) -> list[tuple[object, ...]]:
    """Both apps' inbox rows (other apps' rows may be changing: a live server started by other
    tests keeps working on its own)."""
    rows = await session.execute(
        text(
            "SELECT id, app_id, user_id, seen_at, clicked_at, interacted_at, deleted_at, state,"
            " data::text FROM notifications WHERE app_id IN (:a, :b) ORDER BY id"
        ),
        {"a": world.a.id, "b": world.b.id},
    )
    return [tuple(r) for r in rows]


def assert_404(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["status"] == "error"
    assert isinstance(body["message"], str)


@pytest.mark.parametrize(("method", "path", "body"), PER_ID)
async def test_app_credentials_never_touch_another_apps_notifications(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    before = await snapshot(session, world)
    victims = world.of(world.b, "alice") + world.of(world.b, "bob")
    attempts = [
        world.a.backend(),
        {**world.a.backend(), "X-ENGAGESPOT-USER-ID": "alice"},
        world.a.user("alice"),
        world.a.user("bob"),
        world.a.signed("alice"),
    ]
    for headers in attempts:
        for notification_id in victims:
            url = path.format(id=notification_id)
            assert_404(await client.request(method, url, json=body, headers=headers))
            r = await client.request(
                method, url, json=body, headers=headers, params={"userIdentifier": "alice"}
            )
            assert_404(r)
    assert await snapshot(session, world) == before


@pytest.mark.parametrize(("method", "path", "body"), PER_ID)
async def test_a_user_never_touches_another_users_notification(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    before = await snapshot(session, world)
    a = world.a
    for notification_id in world.of(a, "carol"):
        url = path.format(id=notification_id)
        assert_404(await client.request(method, url, json=body, headers=a.user("alice")))
        # A backend acting for alice is held to alice's inbox too.
        r = await client.request(
            method, url, json=body, headers=a.backend(), params={"userIdentifier": "alice"}
        )
        assert_404(r)
    assert await snapshot(session, world) == before
    # The same request on alice's own notification works, so the 404s above mean something.
    own = path.format(id=world.of(a, "alice")[0])
    r = await client.request(method, own, json=body, headers=a.user("alice"))
    assert r.status_code == 200, r.text


async def test_guessed_ids_only_open_the_callers_own_notifications(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    every = [i for ids in world.ids.values() for i in ids]
    own = set(world.of(world.a, "alice"))
    candidates = [*range(min(every) - 3, max(every) + 4), 2**63 - 1]
    for notification_id in candidates:
        r = await client.get(f"/v3/notifications/{notification_id}", headers=world.a.user("alice"))
        if notification_id in own:
            assert r.status_code == 200, r.text
            assert r.json()["id"] == notification_id
        elif notification_id >= 1:
            assert_404(r)
        else:
            assert r.status_code in (400, 404), r.text


async def test_bulk_marks_stay_in_the_callers_inbox(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    before = {row[0]: row for row in await snapshot(session, world)}
    own = set(world.of(world.a, "alice"))
    for action in ("markAllNotificationsAsSeen", "markAllNotificationsAsRead"):
        r = await client.post(f"/v3/notifications/{action}", headers=world.a.user("alice"))
        assert r.status_code == 200, r.text
    r = await client.post(
        "/v3/notifications/markAllNotificationsAsDeleted", headers=world.a.user("alice")
    )
    assert r.status_code == 200, r.text
    after = {row[0]: row for row in await snapshot(session, world)}
    changed = {i for i in before if before[i] != after[i]}
    assert changed == own


async def test_lists_are_per_app_and_per_user(client: httpx.AsyncClient, world: World) -> None:
    a, b = world.a, world.b
    assert await ids_of(client, a, "alice") == world.of(a, "alice")
    assert await ids_of(client, b, "alice") == world.of(b, "alice")
    assert set(world.of(a, "alice")).isdisjoint(world.of(b, "alice"))
    # App A asking for B's user `bob` sees nothing of B.
    assert await ids_of(client, a, "bob") == []
    r = await client.get("/v3/notifications", headers=a.user("bob"))
    assert r.json()["data"] == []


async def test_users_and_categories_are_per_app(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    a, b = world.a, world.b
    # Users: B's bob is invisible to A, and A cannot delete him.
    assert_404(await client.get("/v3/users/bob", headers=a.backend()))
    assert_404(await client.delete("/v3/users/bob", headers=a.backend()))
    assert (await client.get("/v3/users/bob", headers=b.backend())).status_code == 200
    # Categories: A cannot see, rename or delete B's category, nor set preferences on it.
    r = await client.post("/v3/categories", json={"identifier": "b-only"}, headers=b.backend())
    assert r.status_code == 200, r.text
    category = r.json()
    assert_404(
        await client.patch(
            f"/v3/categories/{category['id']}", json={"name": "pwned"}, headers=a.backend()
        )
    )
    assert_404(await client.delete(f"/v3/categories/{category['id']}", headers=a.backend()))
    r = await client.get("/v3/categories", headers=a.backend())
    assert [c["identifier"] for c in r.json()] == []
    update = {
        "preference": [
            {"categoryId": category["id"], "channels": [{"channel": "inApp", "enabled": False}]}
        ]
    }
    assert_404(await client.patch("/v3/preferences", json=update, headers=a.user("alice")))
    r = await client.get("/v3/categories", headers=b.backend())
    assert [(c["identifier"], c["name"]) for c in r.json()] == [("b-only", "b-only")]
    prefs = await session.execute(
        text(
            "SELECT count(*) FROM preferences p JOIN users u ON u.id = p.user_id"
            " WHERE u.app_id IN (:a, :b)"
        ),
        {"a": a.id, "b": b.id},
    )
    assert prefs.scalar() == 0
