"""The inbox page's body is written by PostgreSQL (repository.page_json) or from rows
(page_body.py, for category and tenant filters), not from models: it must hold what FastAPI
made of the InboxPage model, field for field and in the model's order, whatever the items
hold. Only the spacing may differ (PostgreSQL writes `"key" : value`)."""

import json
from typing import Any

import httpx

from app.inbox.schemas import InboxPage
from tests.factories import Creds, send_body

ODD_DATA: dict[str, Any] = {
    "float": 0.1,
    "big": 1e20,
    "small": 1.5e-7,
    "huge_int": 2**70,
    "negative": -3,
    "text": 'café 用户 "quoted" </script> \u2028 \\ \t',
    "nested": {"list": [1, "two", None, True, False, {"deep": []}]},
    "emoji": "🙂",
    "": "empty key",
}


async def _send(client: httpx.AsyncClient, creds: Creds, **notification: Any) -> None:
    body = send_body("alice", notification=notification)
    response = await client.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text


def _as_the_model_writes_it(body: bytes) -> bytes:
    # Validated into the response model and serialised as FastAPI's dump_json path does.
    return InboxPage.model_validate_json(body).model_dump_json().encode()


def _fields(body: bytes) -> Any:
    # Objects as lists of (key, value) pairs: a missing, extra or misplaced field, or a value
    # of another type ("1" for 1, null for []), makes two bodies differ.
    return json.loads(body, object_pairs_hook=list)


def _as_the_model(body: bytes) -> bool:
    return bool(_fields(body) == _fields(_as_the_model_writes_it(body)))


async def test_the_page_is_the_models_bytes(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, title="plain")
    await _send(
        client,
        creds,
        title='Ünïcödé 用户 "q" \\ </b>',
        message="line\nbreak",
        icon="https://example.com/i.png",
        url="https://example.com/?a=1&b=2",
        data=ODD_DATA,
        blocks=[{"id": "b1", "type": "button", "text": "Go", "value": 1.25}],
        category="alpha",
    )
    await _send(client, creds, title="custom state", data={"k": [1.0, 2.5]})
    user = creds.user("alice")
    listed = await client.get("/v3/notifications", headers=user)
    ids = [item["id"] for item in listed.json()["data"]]
    # One clicked, one in a custom state, one untouched; seen and clicked times are set.
    click = await client.post(
        f"/v3/notifications/{ids[1]}/click", json={"read": True}, headers=user
    )
    assert click.status_code == 200, click.text
    state = await client.put(
        f"/v3/notifications/{ids[0]}/state", json={"state": "accepted"}, headers=user
    )
    assert state.status_code == 200, state.text

    for params in ({}, {"filter": "unread"}, {"category": "alpha"}, {"limit": 2, "pageNo": 2}):
        response = await client.get("/v3/notifications", params=params, headers=user)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert _as_the_model(response.content), params

    page = (await client.get("/v3/notifications", headers=user)).json()
    assert [item["state"] for item in page["data"]] == ["accepted", "clicked", "unread"]
    assert page["data"][1]["data"] == ODD_DATA
    assert page["data"][1]["category"]["identifier"] == "alpha"
    assert page["data"][1]["clickedAt"].endswith("Z")
    assert page["unreadCount"] == 1


async def test_an_empty_page_is_the_models_bytes(client: httpx.AsyncClient, creds: Creds) -> None:
    await _send(client, creds, title="gone")
    deleted = await client.post(
        "/v3/notifications/markAllNotificationsAsDeleted", headers=creds.user("alice")
    )
    assert deleted.status_code == 200, deleted.text
    for who in ("nobody", "alice"):
        response = await client.get(
            "/v3/notifications", params={"limit": 7}, headers=creds.user(who)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "unreadCount": 0,
            "pagination": {"totalCount": 0, "pageNo": 1, "limit": 7, "totalPages": 0},
            "data": [],
        }
        assert _as_the_model(response.content)
