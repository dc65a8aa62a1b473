"""What @engagespot/core 1.x sends and reads differently: `pageNo`, and the item by id."""

from typing import Any

import httpx

from tests.factories import Creds, send_body

JSON = {"Content-Type": "application/json"}
DEVICE = {"X-ENGAGESPOT-DEVICE-ID": "5d0b2c8e-0c1f-4f0e-9a3e-0d5e8c1c2b7a"}


async def _sent(client: httpx.AsyncClient, creds: Creds, user: str, n: int) -> list[int]:
    """Send `user` n notifications (custom data included); return their ids, newest first."""
    for i in range(1, n + 1):
        body = send_body(user, title=f"n{i}", notification={"message": "m", "data": {"k": i}})
        response = await client.post("/v3/notifications", json=body, headers=creds.backend())
        assert response.status_code == 202, response.text
    page = await client.get("/v3/notifications", headers=creds.user(user))
    return [item["id"] for item in page.json()["data"]]


async def _seen(client: httpx.AsyncClient, creds: Creds, user: str) -> list[bool]:
    page = await client.get("/v3/notifications", headers=creds.user(user))
    return [item["seenAt"] is not None for item in page.json()["data"]]


async def test_mark_all_seen_takes_page_no(client: httpx.AsyncClient, creds: Creds) -> None:
    await _sent(client, creds, "alice", 5)
    user = creds.user("alice")
    # As core 1.x sends it: ?pageNo=N&limit=M.
    marked = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen?pageNo=2&limit=2", headers=user
    )
    assert marked.json()["message"] == "2 notifications marked as seen"
    assert await _seen(client, creds, "alice") == [False, False, True, True, False]
    # Both given: `page` (what 3.x sends) wins; a bad pageNo is refused like a bad page.
    both = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen",
        params={"page": 3, "pageNo": 1, "limit": 2},
        headers=user,
    )
    assert both.json()["message"] == "1 notifications marked as seen"
    assert await _seen(client, creds, "alice") == [False, False, True, True, True]
    refused = await client.post(
        "/v3/notifications/markAllNotificationsAsSeen", params={"pageNo": 0}, headers=user
    )
    assert refused.status_code == 400
    assert refused.json()["status"] == "error"
    assert await _seen(client, creds, "alice") == [False, False, True, True, True]


def _top_level(body: dict[str, Any], nid: int) -> None:
    assert body["id"] == nid
    assert (body["title"], body["message"], body["state"]) == ("n2", "m", "seen")
    assert body["seenAt"] is not None


async def test_item_by_id_in_the_shape_each_core_reads(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    ids = await _sent(client, creds, "alice", 2)
    path = f"/v3/notifications/{ids[0]}"
    user = creds.user("alice")

    # 3.x (@engagespot/api-client) always sends a device id: the bare item.
    modern = (await client.get(path, headers={**user, **JSON, **DEVICE})).json()
    _top_level(modern, ids[0])
    assert modern["data"] == {"k": 2}
    # A plain client (curl, a backend SDK, tests): the bare item too.
    plain = (await client.get(path, headers=user)).json()
    assert plain == modern
    backend = await client.get(path, headers={**creds.backend(), **JSON})
    assert backend.json() == modern

    # 1.x's request helper: JSON content type, no device id. 1.3/1.4 read the item under
    # `data` (and `data.data` as its custom data); 1.1.x reads it at the top level.
    legacy = (await client.get(path, headers={**user, **JSON})).json()
    _top_level(legacy, ids[0])
    _top_level(legacy["data"], ids[0])
    assert legacy["data"]["data"] == {"k": 2}
    assert legacy["data"]["k"] == 2
    assert {k: v for k, v in legacy.items() if k != "data"} == {
        k: v for k, v in modern.items() if k != "data"
    }
    assert legacy["data"] == {**modern, "k": 2}


async def test_item_by_id_without_custom_data(client: httpx.AsyncClient, creds: Creds) -> None:
    body = send_body("alice", title="bare")
    assert (await client.post("/v3/notifications", json=body, headers=creds.backend())).is_success
    listed = (await client.get("/v3/notifications", headers=creds.user("alice"))).json()
    nid = listed["data"][0]["id"]
    legacy = await client.get(f"/v3/notifications/{nid}", headers={**creds.user("alice"), **JSON})
    assert legacy.status_code == 200
    assert legacy.json()["data"]["title"] == "bare"
    assert legacy.json()["data"]["data"] is None
