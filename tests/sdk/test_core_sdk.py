"""The official inbox SDK @engagespot/core 3.0.1, unchanged (bundled), against a live Herald.

The socket stays off (`disableAutoStart`): these tests cover the REST calls only."""

import json
import re
from typing import Any

import httpx
import pytest

from tests.factories import Creds
from tests.sdk import node
from tests.sdk.node import Js

pytestmark = [pytest.mark.node, pytest.mark.live]

TITLES = ["one", "two", "three", "four", "five", "six", "seven"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="session")
def js() -> Js:
    return node.prepare()


def prepare_inbox(base: str, creds: Creds, user: str) -> int:
    """Create category "orders" and send `user` seven notifications in it; return its id."""
    created = httpx.post(
        f"{base}/v3/categories",
        json={"identifier": "orders", "name": "Orders"},
        headers=creds.backend(),
    )
    assert created.status_code == 200, created.text
    for title in TITLES:
        sent = httpx.post(
            f"{base}/v3/notifications",
            json={
                "notification": {"title": title, "category": "orders"},
                "sendTo": {"recipients": [user]},
            },
            headers=creds.backend(),
        )
        assert sent.status_code == 202, sent.text
    category_id: int = created.json()["id"]
    return category_id


def listed(call: dict[str, Any]) -> list[tuple[str, str, bool, bool]]:
    """(title, state, seen?, clicked?) per item of a getByPage result."""
    assert call["status"] == 200, call
    return [
        (n["title"], n["state"], n["seenAt"] is not None, n["clickedAt"] is not None)
        for n in call["data"]["data"]
    ]


def unread(call: dict[str, Any]) -> int:
    count: int = call["data"]["unreadCount"]
    return count


def text_json(call: dict[str, Any]) -> Any:
    """Bodies core reads with parseAs: "text" arrive as strings; they are still JSON."""
    assert call["status"] == 200, call
    assert isinstance(call["data"], str), call
    return json.loads(call["data"])


def done(call: dict[str, Any]) -> None:
    """A bulk call answered 200 with a JSON message (core reads it as text and ignores it)."""
    assert isinstance(text_json(call)["message"], str), call


def check_flow(out: dict[str, Any], *, app: Creds, category_id: int) -> None:
    """Assert everything core_flow.mjs did against an inbox made by prepare_inbox."""
    assert out["failures"] == []

    connect = out["connect"]["data"]
    assert connect["unreadCount"] == 7
    assert connect["app"]["id"] == app.id
    assert connect["app"]["channels"] == ["inApp"]
    assert connect["app"]["enableWebPush"] is False
    assert [c["identifier"] for c in connect["app"]["categories"]] == ["orders"]
    assert re.match(r"^[A-Za-z0-9_-]{87}$", connect["app"]["publicKey"])  # P-256 point

    first = out["first"]["data"]
    assert listed(out["first"]) == [(t, "unread", False, False) for t in reversed(TITLES)]
    assert (first["unreadCount"], first["pagination"]["totalCount"]) == (7, 7)
    item = first["data"][-1]
    assert item == {
        "id": int(out["ids"]["one"]),
        "title": "one",
        "message": None,
        "icon": None,
        "url": None,
        "data": None,
        "category": {"id": str(category_id), "identifier": "orders", "name": "Orders"},
        "blocks": [],
        "createdAt": item["createdAt"],
        "seenAt": None,
        "clickedAt": None,
        "state": "unread",
    }
    assert ISO.match(item["createdAt"])
    assert [n["title"] for n in out["pageTwo"]["data"]["data"]] == ["three", "two", "one"]

    # GET by id marks seen; markAsRead (POST /click, no body) marks clicked, whether the id
    # came as a string or as {id}; changeState stores a custom state; remove deletes.
    assert out["getById"]["data"]["state"] == "seen"
    assert ISO.match(out["getById"]["data"]["seenAt"])
    assert out["markAsRead"]["data"]["state"] == "clicked"
    assert out["markAsRead"]["data"]["title"] == "two"
    assert out["markAsReadObject"]["data"]["state"] == "clicked"
    assert out["markAsReadObject"]["data"]["title"] == "three"
    assert out["changeState"]["data"]["state"] == "accepted"
    assert out["remove"]["status"] == 200
    assert out["remove"]["data"]["message"] == "Notification deleted successfully"
    assert listed(out["afterSingles"]) == [
        ("seven", "unread", False, False),
        ("six", "unread", False, False),
        ("four", "accepted", True, False),
        ("three", "clicked", True, True),
        ("two", "clicked", True, True),
        ("one", "seen", True, False),
    ]
    assert unread(out["afterSingles"]) == 2

    # markAllAsSeen takes page and limit: a page of one marks only "seven".
    done(out["markPageSeen"])
    assert listed(out["afterPageSeen"])[:2] == [
        ("seven", "seen", True, False),
        ("six", "unread", False, False),
    ]
    assert unread(out["afterPageSeen"]) == 1
    done(out["markAllAsSeen"])
    assert unread(out["afterSeen"]) == 0

    done(out["markAllAsRead"])
    assert unread(out["afterRead"]) == 0
    assert listed(out["afterRead"]) == [
        ("seven", "clicked", True, True),
        ("six", "clicked", True, True),
        ("four", "accepted", True, True),
        ("three", "clicked", True, True),
        ("two", "clicked", True, True),
        ("one", "clicked", True, True),
    ]

    categories = out["categories"]["data"]
    assert [(c["id"], c["identifier"], c["name"]) for c in categories] == [
        (category_id, "orders", "Orders")
    ]
    assert out["preferencesBefore"]["data"] == []
    rules = [
        {
            "category": {"id": category_id, "name": "Orders", "identifier": "orders"},
            "channelPreferences": [
                {"channel": "email", "enabled": False},
                {"channel": "inApp", "enabled": True},
            ],
        }
    ]
    assert text_json(out["setPreferences"]) == rules
    assert out["preferencesAfter"]["data"] == rules
    assert out["setProfileAttributes"] is True

    done(out["removeAll"])
    assert listed(out["afterRemoveAll"]) == []
    assert out["afterRemoveAll"]["data"]["pagination"]["totalCount"] == 0


def test_inbox_flow_with_user_id(js: Js, live_server: str, live_app: Creds) -> None:
    category_id = prepare_inbox(live_server, live_app, "carol")
    out = js.run(
        "core_flow",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID="carol",
            HERALD_CATEGORY_ID=str(category_id),
        ),
    )
    check_flow(out, app=live_app, category_id=category_id)

    # What the SDK changed is what the server kept.
    headers = live_app.user("carol")
    profile = httpx.get(f"{live_server}/v3/profile", headers=headers).json()
    assert profile == {"firstName": "Carol", "plan": "pro"}
    preferences = httpx.get(f"{live_server}/v3/preferences", headers=headers).json()
    assert preferences == out["preferencesAfter"]["data"]
    inbox = httpx.get(f"{live_server}/v3/notifications", headers=headers).json()
    assert (inbox["unreadCount"], inbox["data"]) == (0, [])


def test_inbox_flow_with_user_token(js: Js, live_server: str, live_app: Creds) -> None:
    category_id = prepare_inbox(live_server, live_app, "dave")
    private_key = node.signing_key(live_server, live_app)
    tokens = js.run(
        "node_tokens",
        node.config(
            live_server, live_app, HERALD_SIGNING_KEY=private_key, HERALD_TOKEN_USERS="dave,erin"
        ),
    )["tokens"]
    node.secure_mode(live_server, live_app)
    sent = httpx.post(
        f"{live_server}/v3/notifications",
        json={"notification": {"title": "for erin"}, "sendTo": {"recipients": ["erin"]}},
        headers=live_app.backend(),
    )
    assert sent.status_code == 202, sent.text
    dave_first = httpx.get(
        f"{live_server}/v3/notifications",
        params={"userIdentifier": "dave", "limit": 1},
        headers=live_app.backend(),
    ).json()["data"][0]["id"]

    # In secure mode, core with only apiKey + userId is refused everywhere.
    bare = js.run(
        "core_probe",
        node.config(live_server, live_app, HERALD_USER_ID="dave", HERALD_PROBE_ID=str(dave_first)),
    )
    for step in ("connect", "list", "getById", "markAsRead"):
        assert bare[step]["status"] == 401, (step, bare[step])
        assert bare[step]["error"]["status"] == "error"
    assert bare["profile"] is False

    # Erin's token reaches Erin's inbox only, whatever userId core is given.
    erin = js.run(
        "core_probe",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID="dave",
            HERALD_USER_TOKEN=tokens["erin"],
            HERALD_PROBE_ID=str(dave_first),
        ),
    )
    assert erin["connect"]["status"] == 200
    assert erin["connect"]["data"]["unreadCount"] == 1
    assert listed(erin["list"]) == [("for erin", "unread", False, False)]
    assert erin["getById"]["status"] == 404
    assert erin["markAsRead"]["status"] == 404
    assert erin["profile"] is True

    # Dave's token drives the whole flow.
    out = js.run(
        "core_flow",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID="dave",
            HERALD_USER_TOKEN=tokens["dave"],
            HERALD_CATEGORY_ID=str(category_id),
        ),
    )
    check_flow(out, app=live_app, category_id=category_id)

    token = {"Authorization": f"Bearer {tokens['dave']}"}
    profile = httpx.get(f"{live_server}/v3/profile", headers=token).json()
    assert profile == {"firstName": "Carol", "plan": "pro"}
    erin_profile = httpx.get(
        f"{live_server}/v3/profile", headers={"Authorization": f"Bearer {tokens['erin']}"}
    ).json()
    assert erin_profile == {"probed": True}
