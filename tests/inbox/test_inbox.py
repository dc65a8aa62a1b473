"""The inbox routes: listing, reading, marking, state, bulk marks, and who may touch what."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NO_AUTH
from app.inbox.models import Notification
from tests.factories import Creds, send_body
from tests.factories import error_message as _error

Json = dict[str, Any]


async def _send(
    client: httpx.AsyncClient, creds: Creds, *recipients: str, title: str = "Hello", **extra: Any
) -> None:
    response = await client.post(
        "/v3/notifications",
        json=send_body(*recipients, title=title, **extra),
        headers=creds.backend(),
    )
    assert response.status_code == 202, response.text


async def _fill(client: httpx.AsyncClient, creds: Creds, user: str, n: int) -> list[int]:
    """Send `n` notifications titled n1..nN to `user`; return their ids, newest first."""
    for i in range(1, n + 1):
        await _send(client, creds, user, title=f"n{i}")
    page = await _page(client, creds.user(user), limit=100)
    assert [item["title"] for item in page["data"]] == [f"n{i}" for i in range(n, 0, -1)]
    return [item["id"] for item in page["data"]]


async def _page(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> Json:
    response = await client.get("/v3/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def _ids(page: Json) -> list[int]:
    return [item["id"] for item in page["data"]]


async def _unread(client: httpx.AsyncClient, creds: Creds, user: str) -> int:
    count: int = (await _page(client, creds.user(user)))["unreadCount"]
    return count


async def _item(client: httpx.AsyncClient, creds: Creds, user: str, nid: int) -> Json:
    """The item as the list shows it (reading it by id would mark it seen)."""
    page = await _page(client, creds.user(user), limit=100)
    found: list[Json] = [item for item in page["data"] if item["id"] == nid]
    assert len(found) == 1
    return found[0]


def _recent(stamp: str | None) -> bool:
    assert stamp is not None
    assert stamp.endswith("Z")
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return datetime.now(UTC) - timedelta(minutes=1) < when <= datetime.now(UTC)


# -- listing -------------------------------------------------------------------------------------


async def test_empty_inbox_for_an_unknown_user(client: httpx.AsyncClient, creds: Creds) -> None:
    page = await _page(client, creds.user("nobody"))
    assert page == {
        "unreadCount": 0,
        "pagination": {"totalCount": 0, "pageNo": 1, "limit": 15, "totalPages": 0},
        "data": [],
    }


async def test_list_is_newest_first_with_default_limit_15(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 17)
    assert ids == sorted(ids, reverse=True)
    page = await _page(client, creds.user("alice"))
    assert _ids(page) == ids[:15]
    assert page["unreadCount"] == 17
    assert page["pagination"] == {"totalCount": 17, "pageNo": 1, "limit": 15, "totalPages": 2}


async def test_pagination_with_page_no_and_limit(client: httpx.AsyncClient, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 5)
    pages = [await _page(client, creds.user("alice"), pageNo=n, limit=2) for n in (1, 2, 3, 4)]
    assert [_ids(p) for p in pages] == [ids[0:2], ids[2:4], ids[4:5], []]
    for n, p in enumerate(pages, start=1):
        assert p["pagination"] == {"totalCount": 5, "pageNo": n, "limit": 2, "totalPages": 3}
        assert p["unreadCount"] == 5
    assert _ids(await _page(client, creds.user("alice"), pageNo="2", limit="3")) == ids[3:5]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 101}, ["limit must not be greater than 100"]),
        ({"limit": 0}, ["limit must not be less than 1"]),
        ({"limit": "ten"}, ["limit must be an integer"]),
        ({"pageNo": 0}, ["pageNo must not be less than 1"]),
        ({"pageNo": -1}, ["pageNo must not be less than 1"]),
        (
            {"filter": "archived"},
            ["filter must be one of the following values: 'unread', 'read' or 'interacted'"],
        ),
        (
            {"category": "c" * 256},
            ["category must be shorter than or equal to 255 characters"],
        ),
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, creds: Creds, params: Json, message: list[str]
) -> None:
    response = await client.get("/v3/notifications", params=params, headers=creds.user("alice"))
    assert _error(response, 400) == message


async def test_limit_100_is_allowed(client: httpx.AsyncClient, creds: Creds) -> None:
    await _fill(client, creds, "alice", 2)
    page = await _page(client, creds.user("alice"), limit=100)
    assert page["pagination"]["limit"] == 100
    assert len(page["data"]) == 2


async def test_filters_unread_read_interacted(client: httpx.AsyncClient, creds: Creds) -> None:
    fresh, seen, clicked, accepted = reversed(await _fill(client, creds, "alice", 4))
    user = creds.user("alice")
    assert (await client.post(f"/v3/notifications/{seen}/views", headers=user)).status_code == 200
    assert (
        await client.post(f"/v3/notifications/{clicked}/click", headers=user)
    ).status_code == 200
    put = await client.put(
        f"/v3/notifications/{accepted}/state", json={"state": "accepted"}, headers=user
    )
    assert put.status_code == 200

    expected = {
        None: [accepted, clicked, seen, fresh],
        "unread": [accepted, seen, fresh],
        "read": [clicked],
        "interacted": [accepted],
    }
    for name, ids in expected.items():
        params = {"filter": name} if name else {}
        page = await _page(client, user, **params)
        assert _ids(page) == ids, name
        assert page["pagination"]["totalCount"] == len(ids), name
        # The badge counts what is neither seen nor clicked, whatever the filter.
        assert page["unreadCount"] == 1, name


async def test_filters_combine_with_pagination(client: httpx.AsyncClient, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 6)
    for nid in ids[::2]:
        await client.post(f"/v3/notifications/{nid}/click", headers=creds.user("alice"))
    page = await _page(client, creds.user("alice"), filter="read", pageNo=2, limit=2)
    assert _ids(page) == [ids[4]]
    assert page["pagination"]["totalCount"] == 3
    assert page["pagination"]["totalPages"] == 2


async def test_category_filter(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, "alice", title="a1", category="alpha")
    await _send(client, creds, "alice", title="b1", category="beta")
    await _send(client, creds, "alice", title="a2", notification={"category": "alpha"})
    await _send(client, creds, "alice", title="none")
    user = creds.user("alice")

    alpha = await _page(client, user, category="alpha")
    assert [n["title"] for n in alpha["data"]] == ["a2", "a1"]
    assert alpha["pagination"]["totalCount"] == 2
    assert {n["category"]["identifier"] for n in alpha["data"]} == {"alpha"}
    assert alpha["unreadCount"] == 2
    beta = await _page(client, user, category="beta")
    assert [n["title"] for n in beta["data"]] == ["b1"]
    assert beta["unreadCount"] == 1
    assert (await _page(client, user))["pagination"]["totalCount"] == 4

    unknown = await _page(client, user, category="gamma")
    assert unknown["data"] == []
    assert unknown["pagination"]["totalCount"] == 0
    assert unknown["unreadCount"] == 0


async def test_category_filter_does_not_see_another_apps_category(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    await _send(client, other, "alice", category="alpha")
    await _send(client, creds, "alice", title="untagged")
    page = await _page(client, creds.user("alice"), category="alpha")
    assert page["data"] == []


async def test_tenant_filter(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, "alice", title="t1-a", tenantIdentifier="t1")
    await _send(client, creds, "alice", title="t2", notification={"tenantIdentifier": "t2"})
    await _send(client, creds, "alice", title="t1-b", notification={"tenantIdentifier": "t1"})
    await _send(client, creds, "alice", title="none")
    user = creds.user("alice")

    t1 = await _page(client, user, tenantIdentifier="t1")
    assert [n["title"] for n in t1["data"]] == ["t1-b", "t1-a"]
    assert t1["pagination"]["totalCount"] == 2
    assert t1["unreadCount"] == 2
    assert [n["title"] for n in (await _page(client, user, tenantIdentifier="t2"))["data"]] == [
        "t2"
    ]
    assert (await _page(client, user, tenantIdentifier="t3"))["pagination"]["totalCount"] == 0
    assert (await _page(client, user))["pagination"]["totalCount"] == 4


async def test_empty_filters_mean_no_filter(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, "alice", title="tagged", category="alpha", tenantIdentifier="t1")
    await _send(client, creds, "alice", title="plain")
    for params in (
        {"category": ""},
        {"tenantIdentifier": ""},
        {"category": "", "tenantIdentifier": ""},
    ):
        page = await _page(client, creds.user("alice"), **params)
        assert [n["title"] for n in page["data"]] == ["plain", "tagged"], params
        assert page["unreadCount"] == 2, params


async def test_a_user_never_sees_another_users_inbox(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await _send(client, creds, "alice", title="for alice")
    await _send(client, creds, "bob", title="for bob")
    alice = await _page(client, creds.user("alice"))
    bob = await _page(client, creds.user("bob"))
    assert [n["title"] for n in alice["data"]] == ["for alice"]
    assert [n["title"] for n in bob["data"]] == ["for bob"]
    assert alice["unreadCount"] == bob["unreadCount"] == 1
    assert (await _page(client, creds.user("carol")))["pagination"]["totalCount"] == 0


async def test_an_app_never_sees_another_apps_inbox(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    await _send(client, creds, "alice")
    assert (await _page(client, other.user("alice")))["pagination"]["totalCount"] == 0
    page = await _page(client, other.backend(), userIdentifier="alice")
    assert page["pagination"]["totalCount"] == 0


async def test_backend_lists_a_users_inbox_with_user_identifier(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 3)
    await _send(client, creds, "bob")
    page = await _page(client, creds.backend(), userIdentifier="alice", limit=2)
    assert _ids(page) == ids[:2]
    assert page["pagination"]["totalCount"] == 3
    assert page["unreadCount"] == 3


async def test_a_user_cannot_borrow_user_identifier(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    """`?userIdentifier=` is for backends; a user's own credentials decide the inbox."""
    await _send(client, creds, "bob", title="for bob")
    (bobs,) = _ids(await _page(client, creds.user("bob")))
    as_alice = {"userIdentifier": "bob"}
    page = await _page(client, creds.user("alice"), **as_alice)
    assert page["pagination"]["totalCount"] == 0
    response = await client.get(
        f"/v3/notifications/{bobs}", headers=creds.user("alice"), params=as_alice
    )
    assert _error(response, 404) == "Notification not found"
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsDeleted",
        headers=creds.user("alice"),
        params=as_alice,
    )
    assert response.json()["message"] == "0 notifications deleted"
    # A backend that names the user in the header too: the header wins.
    page = await _page(
        client, {**creds.backend(), "X-ENGAGESPOT-USER-ID": "alice"}, userIdentifier="bob"
    )
    assert page["pagination"]["totalCount"] == 0
    assert await _unread(client, creds, "bob") == 1


async def test_backend_listing_without_user_identifier_is_400(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    response = await client.get("/v3/notifications", headers=creds.backend())
    assert _error(response, 400) == [
        "userIdentifier is required when authenticating with the API secret"
    ]


async def test_inbox_routes_need_auth(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, "alice")
    (nid,) = _ids(await _page(client, creds.user("alice")))
    calls = [
        ("GET", "/v3/notifications"),
        ("GET", f"/v3/notifications/{nid}"),
        ("DELETE", f"/v3/notifications/{nid}"),
        ("POST", f"/v3/notifications/{nid}/click"),
        ("PATCH", f"/v3/notifications/{nid}/click"),
        ("POST", f"/v3/notifications/{nid}/views"),
        ("DELETE", f"/v3/notifications/{nid}/views"),
        ("DELETE", f"/v3/notifications/{nid}/reads"),
        ("PUT", f"/v3/notifications/{nid}/state"),
        ("POST", "/v3/notifications/markAllNotificationsAsSeen"),
        ("POST", "/v3/notifications/markAllNotificationsAsRead"),
        ("POST", "/v3/notifications/markAllNotificationsAsDeleted"),
    ]
    for method, path in calls:
        bare = await client.request(method, path, json={"state": "seen"})
        assert _error(bare, 401) == NO_AUTH, path
        bad_key = await client.request(
            method,
            path,
            json={"state": "seen"},
            headers={**creds.user("alice"), "X-ENGAGESPOT-API-KEY": "x"},
        )
        _error(bad_key, 401)
    # Nothing changed.
    item = await _item(client, creds, "alice", nid)
    assert (item["seenAt"], item["clickedAt"], item["state"]) == (None, None, "unread")


# -- one notification ----------------------------------------------------------------------------


async def test_get_by_id_returns_the_item_and_marks_it_seen(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 2)
    response = await client.get(f"/v3/notifications/{ids[1]}", headers=creds.user("alice"))
    assert response.status_code == 200
    item = response.json()
    assert item["id"] == ids[1]
    assert item["title"] == "n1"
    assert _recent(item["seenAt"])
    assert item["clickedAt"] is None
    assert item["state"] == "seen"
    assert await _unread(client, creds, "alice") == 1
    # A second read keeps the first seenAt.
    again = await client.get(f"/v3/notifications/{ids[1]}", headers=creds.user("alice"))
    assert again.json()["seenAt"] == item["seenAt"]
    assert await _item(client, creds, "alice", ids[1]) == item
    untouched = await _item(client, creds, "alice", ids[0])
    assert untouched["seenAt"] is None


async def test_unknown_or_malformed_ids(client: httpx.AsyncClient, creds: Creds) -> None:
    user = creds.user("alice")
    assert _error(await client.get("/v3/notifications/999999999", headers=user), 404) == (
        "Notification not found"
    )
    assert _error(await client.get("/v3/notifications/abc", headers=user), 400) == [
        "notification_id must be an integer"
    ]
    assert _error(await client.get("/v3/notifications/0", headers=user), 400) == [
        "notification_id must not be less than 1"
    ]
    _error(await client.get(f"/v3/notifications/{2**63}", headers=user), 400)


async def test_delete_one(client: httpx.AsyncClient, session: AsyncSession, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 3)
    user = creds.user("alice")
    response = await client.delete(f"/v3/notifications/{ids[1]}", headers=user)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "Notification deleted successfully"}
    page = await _page(client, user)
    assert _ids(page) == [ids[0], ids[2]]
    assert page["pagination"]["totalCount"] == 2
    assert page["unreadCount"] == 2
    _error(await client.get(f"/v3/notifications/{ids[1]}", headers=user), 404)
    _error(await client.delete(f"/v3/notifications/{ids[1]}", headers=user), 404)
    _error(await client.post(f"/v3/notifications/{ids[1]}/click", headers=user), 404)
    # Soft-deleted: the row stays, stamped.
    row = await session.get(Notification, ids[1])
    assert row is not None
    assert row.deleted_at is not None


@pytest.mark.parametrize(
    "transport", ["none", "json_true", "form_true", "flutter_form", "patch_json_true"]
)
async def test_click_marks_read_and_seen(
    client: httpx.AsyncClient, creds: Creds, transport: str
) -> None:
    ids = await _fill(client, creds, "alice", 2)
    path = f"/v3/notifications/{ids[0]}/click"
    headers = creds.user("alice")
    if transport == "none":
        response = await client.post(path, headers=headers)
    elif transport == "json_true":
        response = await client.post(path, json={"read": True}, headers=headers)
    elif transport == "form_true":
        response = await client.post(path, data={"read": "true"}, headers=headers)
    elif transport == "flutter_form":
        response = await client.post(
            path,
            content=b"read=true",
            headers={
                **headers,
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            },
        )
    else:
        response = await client.patch(path, json={"read": True}, headers=headers)
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["id"] == ids[0]
    assert item["state"] == "clicked"
    assert _recent(item["clickedAt"])
    assert _recent(item["seenAt"])
    assert await _unread(client, creds, "alice") == 1
    # Clicking again keeps the first timestamps.
    again = await client.post(path, headers=headers)
    assert again.json()["clickedAt"] == item["clickedAt"]
    assert again.json()["seenAt"] == item["seenAt"]


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("PATCH", {"json": {"read": False}}),
        ("POST", {"json": {"read": False}}),
        ("POST", {"data": {"read": "false"}}),
    ],
)
async def test_click_with_read_false_marks_unread(
    client: httpx.AsyncClient, creds: Creds, method: str, kwargs: Json
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    path = f"/v3/notifications/{nid}/click"
    clicked = (await client.post(path, headers=creds.user("alice"))).json()
    response = await client.request(method, path, headers=creds.user("alice"), **kwargs)
    assert response.status_code == 200
    item = response.json()
    assert item["clickedAt"] is None
    assert item["seenAt"] == clicked["seenAt"]
    assert item["state"] == "seen"
    assert len((await _page(client, creds.user("alice"), filter="unread"))["data"]) == 1


async def test_click_with_a_non_object_body_is_400(client: httpx.AsyncClient, creds: Creds) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    path = f"/v3/notifications/{nid}/click"
    assert _error(await client.post(path, json=[1], headers=creds.user("alice")), 400) == [
        "request body must be a JSON object"
    ]
    bad = await client.post(
        path, content=b"{", headers={**creds.user("alice"), "Content-Type": "application/json"}
    )
    assert _error(bad, 400) == ["request body is not valid JSON"]
    assert (await _item(client, creds, "alice", nid))["clickedAt"] is None


async def test_views_mark_seen_and_unseen(client: httpx.AsyncClient, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 2)
    user = creds.user("alice")
    viewed = await client.post(f"/v3/notifications/{ids[0]}/views", headers=user)
    assert viewed.status_code == 200
    assert viewed.json()["state"] == "seen"
    assert _recent(viewed.json()["seenAt"])
    assert viewed.json()["clickedAt"] is None
    assert await _unread(client, creds, "alice") == 1

    unviewed = await client.delete(f"/v3/notifications/{ids[0]}/views", headers=user)
    assert unviewed.status_code == 200
    assert unviewed.json()["seenAt"] is None
    assert unviewed.json()["state"] == "unread"
    assert await _unread(client, creds, "alice") == 2


async def test_unseeing_a_clicked_item_keeps_it_read(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    user = creds.user("alice")
    await client.post(f"/v3/notifications/{nid}/click", headers=user)
    item = (await client.delete(f"/v3/notifications/{nid}/views", headers=user)).json()
    assert item["seenAt"] is None
    assert item["clickedAt"] is not None
    assert item["state"] == "clicked"
    # Clicked still counts as not unread.
    assert await _unread(client, creds, "alice") == 0


async def test_delete_reads_marks_unread_but_keeps_seen(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    user = creds.user("alice")
    clicked = (await client.post(f"/v3/notifications/{nid}/click", headers=user)).json()
    response = await client.delete(f"/v3/notifications/{nid}/reads", headers=user)
    assert response.status_code == 200
    item = response.json()
    assert item["clickedAt"] is None
    assert item["seenAt"] == clicked["seenAt"]
    assert item["state"] == "seen"
    assert await _unread(client, creds, "alice") == 0
    await client.delete(f"/v3/notifications/{nid}/views", headers=user)
    assert await _unread(client, creds, "alice") == 1


# -- state ---------------------------------------------------------------------------------------


async def test_state_built_in_values(client: httpx.AsyncClient, creds: Creds) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    path = f"/v3/notifications/{nid}/state"
    user = creds.user("alice")

    clicked = (await client.put(path, json={"state": "clicked"}, headers=user)).json()
    assert clicked["state"] == "clicked"
    assert _recent(clicked["clickedAt"])
    assert _recent(clicked["seenAt"])
    assert await _unread(client, creds, "alice") == 0

    seen = (await client.put(path, json={"state": "seen"}, headers=user)).json()
    assert seen["state"] == "seen"
    assert seen["seenAt"] == clicked["seenAt"]
    assert seen["clickedAt"] is None
    assert await _unread(client, creds, "alice") == 0

    unread = (await client.put(path, json={"state": "unread"}, headers=user)).json()
    assert unread["state"] == "unread"
    assert unread["seenAt"] is None
    assert unread["clickedAt"] is None
    assert await _unread(client, creds, "alice") == 1

    read = (await client.put(path, json={"state": "read"}, headers=user)).json()
    assert read["state"] == "clicked"
    assert read["clickedAt"] is not None
    assert await _item(client, creds, "alice", nid) == read


async def test_state_custom_value_with_data(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, "alice", data={"friend": "rose", "note": "old"})
    (nid,) = _ids(await _page(client, creds.user("alice")))
    response = await client.put(
        f"/v3/notifications/{nid}/state",
        json={"state": "accepted", "data": {"note": "see you", "rating": "5"}},
        headers=creds.user("alice"),
    )
    assert response.status_code == 200
    item = response.json()
    assert item["state"] == "accepted"
    assert _recent(item["seenAt"])
    assert item["clickedAt"] is None
    assert item["data"] == {"friend": "rose", "note": "see you", "rating": "5"}
    assert await _unread(client, creds, "alice") == 0
    assert _ids(await _page(client, creds.user("alice"), filter="interacted")) == [nid]
    assert await _item(client, creds, "alice", nid) == item

    # A built-in state replaces the custom one; the interaction stays on record.
    back = await client.put(
        f"/v3/notifications/{nid}/state", json={"state": "unread"}, headers=creds.user("alice")
    )
    assert back.json()["state"] == "unread"
    assert back.json()["seenAt"] is None
    assert _ids(await _page(client, creds.user("alice"), filter="interacted")) == [nid]


async def test_state_data_on_a_notification_without_data(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    item = (
        await client.put(
            f"/v3/notifications/{nid}/state",
            json={"state": "answered", "data": {"answer": "yes"}},
            headers=creds.user("alice"),
        )
    ).json()
    assert item["data"] == {"answer": "yes"}


async def test_state_with_delete_removes_the_item(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 2)
    response = await client.put(
        f"/v3/notifications/{ids[0]}/state",
        json={"state": "dismissed", "delete": True},
        headers=creds.user("alice"),
    )
    assert response.status_code == 200
    assert response.json()["id"] == ids[0]
    assert response.json()["state"] == "dismissed"
    page = await _page(client, creds.user("alice"))
    assert _ids(page) == [ids[1]]
    assert page["unreadCount"] == 1
    _error(await client.get(f"/v3/notifications/{ids[0]}", headers=creds.user("alice")), 404)
    row = await session.scalar(
        select(Notification)
        .where(Notification.id == ids[0])
        .execution_options(populate_existing=True)
    )
    assert row is not None
    assert row.deleted_at is not None
    assert row.state == "dismissed"


async def test_state_with_delete_false_keeps_the_item(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    response = await client.put(
        f"/v3/notifications/{nid}/state",
        json={"state": "snoozed", "delete": False},
        headers=creds.user("alice"),
    )
    assert response.json()["state"] == "snoozed"
    assert _ids(await _page(client, creds.user("alice"))) == [nid]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, ["state is required"]),
        ({"state": ""}, ["state should not be empty"]),
        ({"state": "s" * 65}, ["state must be shorter than or equal to 64 characters"]),
        ({"state": 5}, ["state must be a string"]),
        ({"state": "x", "data": "y"}, ["data must be an object"]),
    ],
)
async def test_state_validation(
    client: httpx.AsyncClient, creds: Creds, body: Json, message: list[str]
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    response = await client.put(
        f"/v3/notifications/{nid}/state", json=body, headers=creds.user("alice")
    )
    assert _error(response, 400) == message
    assert (await _item(client, creds, "alice", nid))["state"] == "unread"


# -- another user's and another app's notifications ----------------------------------------------


async def test_another_users_notification_is_404_everywhere(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    bob = creds.user("bob")
    attempts = [
        ("GET", f"/v3/notifications/{nid}", None),
        ("DELETE", f"/v3/notifications/{nid}", None),
        ("POST", f"/v3/notifications/{nid}/click", None),
        ("PATCH", f"/v3/notifications/{nid}/click", {"read": True}),
        ("POST", f"/v3/notifications/{nid}/views", None),
        ("DELETE", f"/v3/notifications/{nid}/views", None),
        ("DELETE", f"/v3/notifications/{nid}/reads", None),
        ("PUT", f"/v3/notifications/{nid}/state", {"state": "clicked"}),
        ("PUT", f"/v3/notifications/{nid}/state", {"state": "x", "delete": True}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=bob)
        assert _error(response, 404) == "Notification not found", (method, path)
        # The backend naming another user is refused the same way.
        response = await client.request(
            method, path, json=body, headers=creds.backend(), params={"userIdentifier": "bob"}
        )
        assert _error(response, 404) == "Notification not found", (method, path)
    item = await _item(client, creds, "alice", nid)
    assert (item["seenAt"], item["clickedAt"], item["state"]) == (None, None, "unread")


async def test_another_apps_notification_is_404_everywhere(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    (nid,) = await _fill(client, creds, "alice", 1)
    for headers in (other.user("alice"), other.backend()):
        for method, path, body in [
            ("GET", f"/v3/notifications/{nid}", None),
            ("DELETE", f"/v3/notifications/{nid}", None),
            ("PATCH", f"/v3/notifications/{nid}/click", {"read": True}),
            ("DELETE", f"/v3/notifications/{nid}/views", None),
            ("DELETE", f"/v3/notifications/{nid}/reads", None),
            ("PUT", f"/v3/notifications/{nid}/state", {"state": "clicked"}),
        ]:
            response = await client.request(method, path, json=body, headers=headers)
            assert _error(response, 404) == "Notification not found", (method, path)
    item = await _item(client, creds, "alice", nid)
    assert (item["seenAt"], item["clickedAt"]) == (None, None)


async def test_backend_acts_on_any_notification_of_its_app(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    """As @engagespot/node does: key + secret, a notification id, and no user."""
    ids = await _fill(client, creds, "alice", 3)
    backend = creds.backend()

    read = await client.patch(
        f"/v3/notifications/{ids[0]}/click", json={"read": True}, headers=backend
    )
    assert read.status_code == 200
    assert read.json()["state"] == "clicked"
    assert await _unread(client, creds, "alice") == 2

    unread = await client.delete(f"/v3/notifications/{ids[0]}/reads", headers=backend)
    assert unread.json()["clickedAt"] is None
    unseen = await client.delete(f"/v3/notifications/{ids[0]}/views", headers=backend)
    assert unseen.json()["state"] == "unread"
    assert await _unread(client, creds, "alice") == 3

    fetched = await client.get(f"/v3/notifications/{ids[1]}", headers=backend)
    assert fetched.json()["state"] == "seen"

    deleted = await client.delete(f"/v3/notifications/{ids[2]}", headers=backend)
    assert deleted.status_code == 200
    assert _ids(await _page(client, creds.user("alice"))) == ids[:2]

    # The backend may also name the owner.
    named = await client.post(
        f"/v3/notifications/{ids[0]}/click", headers=backend, params={"userIdentifier": "alice"}
    )
    assert named.json()["state"] == "clicked"


# -- bulk marks ----------------------------------------------------------------------------------


async def test_mark_all_seen_pages_newest_first(client: httpx.AsyncClient, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 5)
    user = creds.user("alice")

    first = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen", params={"page": 1, "limit": 2}, headers=user
    )
    assert first.status_code == 200
    assert first.json() == {"statusCode": 200, "message": "2 notifications marked as seen"}
    page = await _page(client, user)
    assert [n["seenAt"] is not None for n in page["data"]] == [True, True, False, False, False]
    assert page["unreadCount"] == 3

    second = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen", params={"page": 3, "limit": 2}, headers=user
    )
    assert second.json()["message"] == "1 notifications marked as seen"
    page = await _page(client, user)
    assert [n["id"] for n in page["data"] if n["seenAt"] is None] == ids[2:4]
    assert page["unreadCount"] == 2

    # Seen items on the page are not counted again; the earlier seenAt stays.
    before = {n["id"]: n["seenAt"] for n in page["data"]}
    whole = await client.post("/v3/notifications/markAllNotificationsAsSeen", headers=user)
    assert whole.json()["message"] == "2 notifications marked as seen"
    page = await _page(client, user)
    assert page["unreadCount"] == 0
    for n in page["data"]:
        if before[n["id"]] is not None:
            assert n["seenAt"] == before[n["id"]]
        assert n["clickedAt"] is None
        assert n["state"] == "seen"


async def test_mark_all_seen_defaults_to_the_newest_15(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 16)
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen", headers=creds.user("alice")
    )
    assert response.json()["message"] == "15 notifications marked as seen"
    page = await _page(client, creds.user("alice"), limit=20)
    assert page["unreadCount"] == 1
    assert [n["id"] for n in page["data"] if n["seenAt"] is None] == [ids[-1]]


async def test_mark_all_seen_skips_clicked_and_deleted_rows(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 3)
    user = creds.user("alice")
    await client.delete(f"/v3/notifications/{ids[0]}", headers=user)
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen", params={"limit": 1}, headers=user
    )
    # The page is computed on the visible inbox: ids[1] is its first item.
    assert response.json()["message"] == "1 notifications marked as seen"
    assert (await _item(client, creds, "alice", ids[1]))["seenAt"] is not None
    assert (await _item(client, creds, "alice", ids[2]))["seenAt"] is None


async def test_mark_all_seen_limit_is_bounded(client: httpx.AsyncClient, creds: Creds) -> None:
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen",
        params={"limit": 101},
        headers=creds.user("alice"),
    )
    assert _error(response, 400) == ["limit must not be greater than 100"]
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen",
        params={"page": 0},
        headers=creds.user("alice"),
    )
    assert _error(response, 400) == ["page must not be less than 1"]


async def test_mark_all_read(client: httpx.AsyncClient, creds: Creds) -> None:
    ids = await _fill(client, creds, "alice", 3)
    await _send(client, creds, "bob")
    user = creds.user("alice")
    earlier = (await client.post(f"/v3/notifications/{ids[2]}/click", headers=user)).json()

    response = await client.post("/v3/notifications/markAllNotificationsAsRead", headers=user)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "3 notifications marked as read"}
    page = await _page(client, user)
    assert page["unreadCount"] == 0
    assert {n["state"] for n in page["data"]} == {"clicked"}
    assert all(_recent(n["clickedAt"]) and _recent(n["seenAt"]) for n in page["data"])
    assert (await _item(client, creds, "alice", ids[2]))["clickedAt"] == earlier["clickedAt"]
    assert _ids(await _page(client, user, filter="read")) == ids
    assert (await _page(client, user, filter="unread"))["data"] == []
    # Bob's inbox is untouched.
    assert await _unread(client, creds, "bob") == 1


async def test_mark_all_deleted(client: httpx.AsyncClient, creds: Creds, other: Creds) -> None:
    await _fill(client, creds, "alice", 3)
    await _send(client, creds, "bob")
    await _send(client, other, "alice")
    user = creds.user("alice")

    response = await client.post("/v3/notifications/markAllNotificationsAsDeleted", headers=user)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "3 notifications deleted"}
    assert await _page(client, user) == {
        "unreadCount": 0,
        "pagination": {"totalCount": 0, "pageNo": 1, "limit": 15, "totalPages": 0},
        "data": [],
    }
    assert (await _page(client, creds.user("bob")))["pagination"]["totalCount"] == 1
    assert (await _page(client, other.user("alice")))["pagination"]["totalCount"] == 1

    again = await client.post("/v3/notifications/markAllNotificationsAsDeleted", headers=user)
    assert again.json()["message"] == "0 notifications deleted"
    await _send(client, creds, "alice", title="after")
    assert [n["title"] for n in (await _page(client, user))["data"]] == ["after"]


async def test_bulk_marks_for_an_unknown_user_change_nothing(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await _send(client, creds, "alice")
    for name in ("Seen", "Read", "Deleted"):
        response = await client.post(
            f"/v3/notifications/markAllNotificationsAs{name}", headers=creds.user("nobody")
        )
        assert response.status_code == 200
        assert response.json()["message"].startswith("0 notifications")
    assert await _unread(client, creds, "alice") == 1


async def test_bulk_marks_by_backend_need_a_user(client: httpx.AsyncClient, creds: Creds) -> None:
    await _fill(client, creds, "alice", 2)
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsRead", headers=creds.backend()
    )
    _error(response, 400)
    assert await _unread(client, creds, "alice") == 2
    response = await client.post(
        "/v3/notifications/markAllNotificationsAsRead",
        headers=creds.backend(),
        params={"userIdentifier": "alice"},
    )
    assert response.json()["message"] == "2 notifications marked as read"
    assert await _unread(client, creds, "alice") == 0


async def test_unread_count_through_a_whole_session(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _fill(client, creds, "alice", 4)
    user = creds.user("alice")
    steps: list[tuple[str, str, Json | None, int]] = [
        ("GET", f"/v3/notifications/{ids[0]}", None, 3),
        ("POST", f"/v3/notifications/{ids[1]}/click", None, 2),
        ("DELETE", f"/v3/notifications/{ids[1]}/reads", None, 2),
        ("DELETE", f"/v3/notifications/{ids[1]}/views", None, 3),
        ("POST", f"/v3/notifications/{ids[2]}/views", None, 2),
        ("PUT", f"/v3/notifications/{ids[2]}/state", {"state": "unread"}, 3),
        ("DELETE", f"/v3/notifications/{ids[3]}", None, 2),
        ("POST", "/v3/notifications/markAllNotificationsAsRead", None, 0),
        ("PUT", f"/v3/notifications/{ids[0]}/state", {"state": "unread"}, 1),
        ("POST", "/v3/notifications/markAllNotificationsAsDeleted", None, 0),
    ]
    for method, path, body, expected in steps:
        response = await client.request(method, path, json=body, headers=user)
        assert response.status_code == 200, (method, path, response.text)
        assert await _unread(client, creds, "alice") == expected, (method, path)
