"""The per-user inbox counters equal count(*) after every kind of change, concurrent ones too."""

import asyncio
import random
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.inbox import repository, service
from app.inbox.models import Notification
from app.kit.timefmt import utcnow
from app.sends import tasks
from app.users import repository as users_repository
from tests.factories import Creds, make_app, send_body

Json = dict[str, Any]

# What each counter counts, straight from the rows.
_TRUTH = """
SELECT u.id,
       count(n.id) FILTER (WHERE n.deleted_at IS NULL),
       count(n.id) FILTER (WHERE n.deleted_at IS NULL AND n.seen_at IS NULL
                                 AND n.clicked_at IS NULL),
       count(n.id) FILTER (WHERE n.deleted_at IS NULL AND n.clicked_at IS NULL),
       count(n.id) FILTER (WHERE n.deleted_at IS NULL AND n.interacted_at IS NOT NULL)
FROM users u LEFT JOIN notifications n ON n.user_id = u.id
WHERE u.app_id = :app_id
GROUP BY u.id
"""
_KEPT = """
SELECT u.id, c.total, c.unseen, c.unclicked, c.interacted
FROM users u JOIN inbox_counters c ON c.user_id = u.id
WHERE u.app_id = :app_id
"""


async def _exact(session: AsyncSession, app_id: int) -> dict[int, tuple[int, ...]]:
    """Assert every user's counters equal count(*) of their rows; return the counts."""
    truth = {r[0]: tuple(r[1:]) for r in await session.execute(text(_TRUTH), {"app_id": app_id})}
    kept = {r[0]: tuple(r[1:]) for r in await session.execute(text(_KEPT), {"app_id": app_id})}
    for user_id, counts in truth.items():
        assert kept.get(user_id, (0, 0, 0, 0)) == counts, user_id
    assert set(kept) <= set(truth)
    return truth


async def _send(client: httpx.AsyncClient, creds: Creds, *to: str, **extra: Any) -> str:
    response = await client.post(
        "/v3/notifications", json=send_body(*to, **extra), headers=creds.backend()
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


async def _page(client: httpx.AsyncClient, creds: Creds, user: str, **params: Any) -> Json:
    response = await client.get("/v3/notifications", params=params, headers=creds.user(user))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _ids(client: httpx.AsyncClient, creds: Creds, user: str) -> list[int]:
    return [i["id"] for i in (await _page(client, creds, user, limit=100))["data"]]


async def _pages_agree(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, user: str
) -> None:
    """totalCount and unreadCount of every filter equal count(*) of what that filter lists."""
    where = {
        None: "TRUE",
        "unread": "n.clicked_at IS NULL",
        "read": "n.clicked_at IS NOT NULL",
        "interacted": "n.interacted_at IS NOT NULL",
    }
    scopes: list[tuple[dict[str, str], str]] = [
        ({}, "TRUE"),
        ({"category": "orders"}, "c.identifier = 'orders'"),
        ({"tenantIdentifier": "t1"}, "n.tenant_identifier = 't1'"),
        (
            {"category": "orders", "tenantIdentifier": "t1"},
            "c.identifier = 'orders' AND n.tenant_identifier = 't1'",
        ),
    ]
    for params, scope in scopes:
        for state, condition in where.items():
            query = {**params, **({"filter": state} if state else {})}
            page = await _page(client, creds, user, **query)
            base = (
                "FROM notifications n JOIN users u ON u.id = n.user_id "
                "LEFT JOIN categories c ON c.id = n.category_id "
                "WHERE u.app_id = :app AND u.identifier = :user AND n.deleted_at IS NULL "
                f"AND {scope}"
            )
            total = (
                await session.execute(
                    text(f"SELECT count(*) {base} AND {condition}"),
                    {"app": creds.id, "user": user},
                )
            ).scalar_one()
            unread = (
                await session.execute(
                    text(f"SELECT count(*) {base} AND n.seen_at IS NULL AND n.clicked_at IS NULL"),
                    {"app": creds.id, "user": user},
                )
            ).scalar_one()
            assert page["pagination"]["totalCount"] == total, query
            assert page["unreadCount"] == unread, query
            assert len(page["data"]) == min(15, total), query


async def test_every_kind_of_change_keeps_the_counters_exact(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    app_id = creds.id
    users = ["ann", "bob", "cy"]
    await _exact(session, app_id)
    # Inline sends: one recipient, several, with category, tenant and data.
    for i in range(8):
        await _send(client, creds, *users[: 1 + i % 3], title=f"n{i}")
        await _exact(session, app_id)
    await _send(client, creds, "ann", "bob", category="orders", tenantIdentifier="t1")
    await _send(client, creds, "ann", notification={"category": "orders"})
    await _send(client, creds, "ann", tenantIdentifier="t1", data={"k": 1})
    await _exact(session, app_id)

    # A fan-out, in batches, as the worker runs it.
    topic = await client.post("/v3/topics", json={"name": "All"}, headers=creds.backend())
    assert topic.status_code == 201, topic.text
    tid = topic.json()["id"]
    subscribed = await client.post(
        f"/v3/topics/{tid}/users",
        json={"users": [{"identifier": u} for u in [*users, "dee", "eve"]]},
        headers=creds.backend(),
    )
    assert subscribed.status_code == 200, subscribed.text
    request_id = await _send_topic(client, creds, "all")
    await tasks.fan_out(session.info["maker"], uuid.UUID(request_id), batch=2)
    await _exact(session, app_id)

    ann = await _ids(client, creds, "ann")
    steps: list[tuple[str, str, Json | None]] = [
        ("GET", f"/v3/notifications/{ann[0]}", None),  # read one: seen
        ("POST", f"/v3/notifications/{ann[1]}/click", None),
        ("POST", f"/v3/notifications/{ann[1]}/click", None),  # a second click changes nothing
        ("PATCH", f"/v3/notifications/{ann[2]}/click", {"read": True}),
        ("PATCH", f"/v3/notifications/{ann[2]}/click", {"read": False}),
        ("POST", f"/v3/notifications/{ann[3]}/views", None),
        ("DELETE", f"/v3/notifications/{ann[3]}/views", None),
        ("DELETE", f"/v3/notifications/{ann[1]}/reads", None),
        ("PUT", f"/v3/notifications/{ann[4]}/state", {"state": "accepted"}),
        ("PUT", f"/v3/notifications/{ann[4]}/state", {"state": "unread"}),
        ("PUT", f"/v3/notifications/{ann[5]}/state", {"state": "seen"}),
        ("PUT", f"/v3/notifications/{ann[6]}/state", {"state": "clicked"}),
        ("PUT", f"/v3/notifications/{ann[7]}/state", {"state": "done", "data": {"x": 1}}),
        ("PUT", f"/v3/notifications/{ann[8]}/state", {"state": "gone", "delete": True}),
        ("DELETE", f"/v3/notifications/{ann[9]}", None),
        ("DELETE", f"/v3/notifications/{ann[9]}", None),  # already gone: 404, no change
        ("POST", "/v3/notifications/markAllNotificationsAsSeen", None),
    ]
    for method, path, body in steps:
        response = await client.request(
            method,
            path,
            json=body,
            headers=creds.user("ann")
            if body is None
            else {**creds.user("ann"), "Content-Type": "application/json"},
        )
        assert response.status_code in (200, 404), (method, path, response.text)
        await _exact(session, app_id)
        await _pages_agree(client, session, creds, "ann")

    # A backend acting on a user's item by id.
    bob = await _ids(client, creds, "bob")
    response = await client.post(f"/v3/notifications/{bob[0]}/click", headers=creds.backend())
    assert response.status_code == 200, response.text
    await _exact(session, app_id)
    for mark in ("markAllNotificationsAsRead", "markAllNotificationsAsDeleted"):
        response = await client.post(f"/v3/notifications/{mark}", headers=creds.user("bob"))
        assert response.status_code == 200, response.text
        await _exact(session, app_id)
        await _pages_agree(client, session, creds, "bob")

    # Retention: a purge of old rows, soft-deleted ones among them.
    await session.execute(
        text(
            "UPDATE notifications SET created_at = now() - interval '100 days' "
            "WHERE app_id = :app AND id % 2 = 0"
        ),
        {"app": app_id},
    )
    await _exact(session, app_id)
    cutoff = utcnow() - timedelta(days=90)
    while await repository.purge(session, created_before=cutoff, app_id=app_id, limit=3) == 3:
        await _exact(session, app_id)
    await _exact(session, app_id)
    left = await session.execute(
        text("SELECT count(*) FROM notifications WHERE app_id = :app AND created_at < :cut"),
        {"app": app_id, "cut": cutoff},
    )
    assert left.scalar_one() == 0

    # Deleting a user takes their rows and counters with them.
    response = await client.delete("/v3/users/cy", headers=creds.backend())
    assert response.status_code == 202, response.text
    await _exact(session, app_id)
    counts = await _exact(session, app_id)
    assert sum(c[0] for c in counts.values()) > 0  # the test did leave rows to count


async def _send_topic(client: httpx.AsyncClient, creds: Creds, topic: str) -> str:
    response = await client.post(
        "/v3/notifications",
        json={"notification": {"title": "To all"}, "sendTo": {"topics": [topic]}},
        headers=creds.backend(),
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


async def test_a_purge_of_another_app_leaves_this_one_alone(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    await _send(client, creds, "ann")
    await _send(client, other, "ann")
    deleted = await repository.purge(
        session, created_before=utcnow() + timedelta(seconds=5), app_id=other.id
    )
    assert deleted == 1
    assert (await _page(client, creds, "ann"))["pagination"]["totalCount"] == 1
    assert (await _page(client, other, "ann"))["pagination"]["totalCount"] == 0
    await _exact(session, creds.id)
    await _exact(session, other.id)


# -- concurrency, on a database whose transactions really commit ---------------------------


@pytest.fixture
async def live_maker(live_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(live_engine, expire_on_commit=False, autoflush=False)


async def test_concurrent_changes_keep_the_counters_exact(
    live_maker: async_sessionmaker[AsyncSession],
) -> None:
    """Sends to overlapping users, mark-alls, clicks, deletes and purges at once: no deadlock,
    no lost update."""
    async with live_maker.begin() as session:
        app, _creds = await make_app(session, name="counters-" + uuid.uuid4().hex[:6])
        app_id = app.id
        identifiers = [f"c{i}" for i in range(12)]
        ids = await users_repository.ensure(session, app_id, identifiers)
    user_ids = list(ids.values())
    rng = random.Random(7)
    errors: list[BaseException] = []

    async def sends(k: int) -> None:
        for n in range(15):
            chosen = rng.sample(user_ids, rng.randint(1, 8))
            async with live_maker.begin() as session:
                await session.execute(
                    text(
                        "INSERT INTO notification_requests (id, app_id, payload) "
                        "VALUES (:id, :app, '{}')"
                    ),
                    {"id": (rid := uuid.uuid4()), "app": app_id},
                )
                await service.deliver(
                    session,
                    app_id=app_id,
                    request_id=rid,
                    user_ids=chosen,
                    content={
                        "title": f"s{k}.{n}",
                        "message": None,
                        "icon": None,
                        "url": None,
                        "data": None,
                        "blocks": None,
                        "category_id": None,
                        "tenant": None,
                    },
                    created_at=utcnow() - timedelta(days=rng.choice([0, 0, 200])),
                )

    async def marks(k: int) -> None:
        for n in range(10):
            identifier = rng.choice(identifiers)
            values = [service.clicked_now(), service.seen_now(), {"deleted_at": utcnow()}][n % 3]
            async with live_maker.begin() as session:
                await service.mark_all(
                    session,
                    app_id=app_id,
                    identifier=identifier,
                    values=values,
                    event="ALL_NOTIFICATION_READ",
                )

    async def singles(k: int) -> None:
        for _ in range(20):
            async with live_maker.begin() as session:
                nid = (
                    await session.execute(
                        text(
                            "SELECT id FROM notifications WHERE app_id = :app "
                            "ORDER BY random() LIMIT 1"
                        ),
                        {"app": app_id},
                    )
                ).scalar()
                if nid is None:
                    continue
                changes: list[dict[str, Any]] = [
                    {"clicked_at": None},
                    {"seen_at": None},
                    {"deleted_at": utcnow()},
                ]
                change = rng.choice(changes)
                await repository.change(session, [Notification.id == nid], change)

    async def purges(k: int) -> None:
        for _ in range(5):
            async with live_maker.begin() as session:
                await repository.purge(
                    session, created_before=utcnow() - timedelta(days=90), app_id=app_id, limit=7
                )
            await asyncio.sleep(0.01)

    async def guarded(work: Any, k: int) -> None:
        try:
            await work(k)
        except BaseException as exc:
            errors.append(exc)

    await asyncio.gather(
        *(guarded(w, k) for k in range(3) for w in (sends, marks, singles, purges))
    )
    assert not errors, errors
    async with live_maker() as session:
        counts = await _exact(session, app_id)
    assert sum(c[0] for c in counts.values()) > 0
