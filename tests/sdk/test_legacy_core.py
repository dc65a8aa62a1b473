"""@engagespot/core 1.3.8 and 1.4.2 (bundled, unchanged) against a live Herald, socket on.

These are the cores under @engagespot/react-hooks 1.x and react-component 1.x/2.x. One driver
(tests/js/legacy_core.mjs) runs the whole REST flow and waits for the live event each call
announces; it is bundled once per release."""

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.devices.models import Device
from app.users.models import User
from tests.factories import Creds, user_token
from tests.sdk import node
from tests.sdk.node import Js

pytestmark = [pytest.mark.node, pytest.mark.live]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TITLES = ["one", "two", "three", "four", "five"]


@pytest.fixture(scope="session")
def js() -> Js:
    return node.prepare()


def category(base: str, creds: Creds) -> int:
    created = httpx.post(
        f"{base}/v3/categories",
        json={"identifier": "orders", "name": "Orders"},
        headers=creds.backend(),
    )
    assert created.status_code == 200, created.text
    category_id: int = created.json()["id"]
    return category_id


def states(listing: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
    """(title, seen?, clicked?) per listed item."""
    return [(n["title"], n["seenAt"] is not None, n["clickedAt"] is not None) for n in listing]


def check_flow(out: dict[str, Any], *, category_id: int) -> None:
    """Assert what legacy_core.mjs saw, for a user whose inbox started empty."""
    assert out["failures"] == []
    assert out["ready"] is True
    assert out["connect"]["unreadCount"] == 0
    assert out["connect"]["enabledChannels"] == ["inApp"]
    assert out["connect"]["publicKeyLength"] == 87

    ids = out["ids"]
    # Each live item is built from the socket payload alone: message and time included.
    for title, received in zip(TITLES, out["received"], strict=True):
        assert received == {
            "id": ids[title],
            "title": title,
            "message": f"{title} message",
            "icon": "https://example.com/icon.png",
            "url": f"https://example.com/{title}",
            "data": {"orderId": len(title)},
            "blocks": [],
            "createdAt": received["createdAt"],
            "seenAt": None,
            "clickedAt": None,
        }
        assert isinstance(received["id"], int)
        assert ISO.match(received["createdAt"])

    first = out["first"]
    assert (first["unreadCount"], first["totalCount"], first["totalPages"]) == (5, 5, 1)
    assert [n["title"] for n in first["items"]] == list(reversed(TITLES))
    assert first["items"][-1] == {
        **out["received"][0],
        "createdAt": first["items"][-1]["createdAt"],
    }
    assert first["items"][-1]["createdAt"] == out["received"][0]["createdAt"]
    assert [n["title"] for n in out["pageTwo"]["items"]] == ["three", "two"]
    assert out["unreadAfterList"] == 5

    # Notification.fetch() reads the item under `data`; GET by id marks it seen.
    fetched = out["fetched"]
    assert fetched["title"] == "one"
    assert fetched["message"] == "one message"
    assert fetched["data"] == {"orderId": 3}
    assert fetched["blocks"] == []
    assert fetched["createdAt"] == out["received"][0]["createdAt"]
    assert ISO.match(fetched["seenAt"])
    assert fetched["clickedAt"] is None
    assert out["fetchSeen"] == [ids["one"]]

    assert out["markAsRead"]["id"] == ids["two"]
    assert out["click"] == [ids["two"]]
    assert out["unreadSee"] == [ids["two"]]
    assert out["unseenSee"] == [ids["one"]]
    assert out["changeState"]["state"] == "accepted"
    changed_id, changed = out["stateChange"]
    assert changed_id == ids["three"]
    assert (changed["state"], changed["description"], changed["message"]) == (
        "accepted",
        "three message",
        "three message",
    )
    assert out["remove"] == [ids["four"]]
    assert states(out["afterSingles"]["items"]) == [
        ("five", False, False),
        ("three", True, False),
        ("two", True, False),
        ("one", False, False),
    ]
    assert out["afterSingles"]["unreadCount"] == 2

    # markAllAsSeen(2, 2) sends ?pageNo=2&limit=2: page two is ["two", "one"].
    assert out["pageSeen"] == [ids["one"]]
    assert out["pageAllSeen"] == []
    assert states(out["afterPageSeen"]["items"]) == [
        ("five", False, False),
        ("three", True, False),
        ("two", True, False),
        ("one", True, False),
    ]
    assert out["afterPageSeen"]["unreadCount"] == 1

    assert out["allRead"] == []
    assert out["allReadCount"] == []
    assert out["afterRead"]["unreadCount"] == 0
    assert all(clicked for _, _, clicked in states(out["afterRead"]["items"]))

    assert [(c["id"], c["identifier"]) for c in out["categories"]] == [(category_id, "orders")]
    assert out["preferencesBefore"] == []
    assert out["preferencesAfter"] == [
        {
            "category": {"id": category_id, "name": "Orders", "identifier": "orders"},
            "channelPreferences": [{"channel": "email", "enabled": False}],
        }
    ]
    assert out["webPush"] is True

    assert out["removeAllEvent"] == []
    assert out["removeAllCount"] == []
    assert out["afterRemoveAll"]["items"] == []
    assert out["afterRemoveAll"]["totalCount"] == 0
    assert out["sentinel"] == "sentinel"
    assert out["leftover"] == []


def check_server(
    database_url: str, base: str, app: Creds, headers: dict[str, str], user: str, device: str
) -> None:
    """What the SDK changed is what the server kept."""
    profile = httpx.get(f"{base}/v3/profile", headers=headers)
    assert profile.json() == {"firstName": "Legacy", "plan": "pro"}, profile.text
    inbox = httpx.get(f"{base}/v3/notifications", headers=headers).json()
    assert [n["title"] for n in inbox["data"]] == ["sentinel"]
    # connect() registered the device; attachPushSubscription() stored its subscription.
    devices = asyncio.run(_devices(database_url, app.id, user, device))
    assert len(devices) == 1, devices
    kind, browser, subscription = devices[0]
    assert (kind, browser) == ("browser", "other")
    assert subscription["endpoint"] == "https://fcm.googleapis.com/fcm/send/legacy-core"


async def _devices(database_url: str, app_id: int, user: str, device: str) -> list[Any]:
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            rows = await session.execute(
                select(Device.device_type, Device.browser_type, Device.web_push_subscription)
                .join(User, User.id == Device.user_id)
                .where(User.app_id == app_id, User.identifier == user)
                .where(Device.device_identifier == device)
            )
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("version", ["1.3.8", "1.4.2"])
def test_flow_and_live_events(
    js: Js, live_server: str, live_app: Creds, live_database_url: str, version: str
) -> None:
    user = f"legacy-{version}"
    category_id = category(live_server, live_app)
    out = js.run(
        f"legacy_core_{version}",
        node.config(
            live_server, live_app, HERALD_USER_ID=user, HERALD_CATEGORY_ID=str(category_id)
        ),
    )
    check_flow(out, category_id=category_id)
    check_server(
        live_database_url, live_server, live_app, live_app.user(user), user, out["deviceId"]
    )


@pytest.mark.parametrize(
    ("version", "mode"),
    [("1.3.8", "hmac"), ("1.4.2", "jwt")],
    ids=["1.3.8-hmac-baseURL", "1.4.2-jwt-endPointOverride"],
)
def test_flow_and_live_events_when_signed(
    js: Js, live_server: str, live_app: Creds, live_database_url: str, version: str, mode: str
) -> None:
    """HMAC signature (header and socket query) or user token (bearer and socket auth); the
    second also points core with `endPointOverride` + `rtmServer` instead of `baseURL`."""
    user = f"legacy-{version}-{mode}"
    category_id = category(live_server, live_app)
    if mode == "hmac":
        headers = live_app.signed(user)
        signed = {"HERALD_USER_SIGNATURE": headers["X-ENGAGESPOT-USER-SIGNATURE"]}
        node.admin(live_server, "PATCH", f"/{live_app.id}", {"hmacEnabled": True})
    else:
        token = user_token(node.signing_key(live_server, live_app), live_app.api_key, user)
        headers = {"Authorization": f"Bearer {token}"}
        signed = {"HERALD_USER_TOKEN": token, "HERALD_OVERRIDE": "1"}
        node.secure_mode(live_server, live_app)
    # Unsigned, the same user is refused: the SDK's signature is what lets it in.
    refused = httpx.get(f"{live_server}/v3/notifications", headers=live_app.user(user))
    assert refused.status_code == 401, refused.text

    out = js.run(
        f"legacy_core_{version}",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID=user,
            HERALD_CATEGORY_ID=str(category_id),
            **signed,
        ),
    )
    check_flow(out, category_id=category_id)
    check_server(live_database_url, live_server, live_app, headers, user, out["deviceId"])
