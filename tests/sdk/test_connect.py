"""POST /v3/sdk/connect: the front-end SDKs' handshake."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps.models import App
from app.devices.models import Device
from app.errors import NO_AUTH
from app.users.models import User
from tests.factories import Creds, send_body
from tests.factories import error_message as _error

DEVICE = "X-ENGAGESPOT-DEVICE-ID"


async def _devices(session: AsyncSession) -> list[tuple[str, str, str | None, str | None]]:
    rows = await session.execute(
        select(User.identifier, Device.device_identifier, Device.device_type, Device.browser_type)
        .join(User, User.id == Device.user_id)
        .order_by(Device.id)
        .execution_options(populate_existing=True)
    )
    return [(u, d, t, b) for u, d, t, b in rows]


async def test_connect_with_json_body_and_device(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.post(
        "/v3/sdk/connect",
        json={"deviceType": "browser", "browserType": "chrome"},
        headers={**creds.user("alice"), DEVICE: "0b8c9a0e-uuid"},
    )
    assert response.status_code == 200
    app = await session.get(App, creds.id)
    assert app is not None
    assert response.json() == {
        "unreadCount": 0,
        "app": {
            "id": creds.id,
            "name": "test",
            "publicKey": app.vapid_public_key,
            "enableWebPush": False,
            "hideBranding": True,
            "channels": ["inApp"],
            "categories": [],
        },
    }
    assert await _devices(session) == [("alice", "0b8c9a0e-uuid", "browser", "chrome")]


async def test_connect_creates_the_user(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.post("/v3/sdk/connect", headers=creds.user("new@example.com"))
    assert response.status_code == 200
    profile = await session.scalar(
        select(User.profile).where(User.app_id == creds.id, User.identifier == "new@example.com")
    )
    assert profile == {"email": "new@example.com"}


async def test_connect_with_a_form_body(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    # The Flutter SDK posts `deviceType=android` form-encoded, with device id "123".
    response = await client.post(
        "/v3/sdk/connect",
        data={"deviceType": "android"},
        headers={**creds.user("alice"), DEVICE: "123"},
    )
    assert response.status_code == 200
    assert response.json()["unreadCount"] == 0
    assert await _devices(session) == [("alice", "123", "android", None)]


@pytest.mark.parametrize(
    "kwargs", [{}, {"content": b""}, {"json": {}}, {"content": b"null"}, {"content": b"  "}]
)
async def test_connect_with_an_empty_body(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, kwargs: dict[str, Any]
) -> None:
    response = await client.post(
        "/v3/sdk/connect",
        headers={**creds.user("alice"), DEVICE: "dev-1", "Content-Type": "application/json"},
        **kwargs,
    )
    assert response.status_code == 200, response.text
    assert await _devices(session) == [("alice", "dev-1", None, None)]


async def test_connect_without_a_device_id_registers_no_device(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    for headers in (creds.user("alice"), {**creds.user("alice"), DEVICE: "   "}):
        response = await client.post(
            "/v3/sdk/connect", json={"deviceType": "browser"}, headers=headers
        )
        assert response.status_code == 200
    assert await _devices(session) == []
    assert await session.scalar(select(User.identifier).where(User.app_id == creds.id)) == "alice"


async def test_reconnecting_updates_the_same_device(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    headers = {**creds.user("alice"), DEVICE: "dev-1"}
    await client.post(
        "/v3/sdk/connect", json={"deviceType": "browser", "browserType": "chrome"}, headers=headers
    )
    first_seen = await session.scalar(select(Device.last_seen_at))
    # An empty body keeps what is known; a new browserType replaces the old one.
    await client.post("/v3/sdk/connect", headers=headers)
    assert await _devices(session) == [("alice", "dev-1", "browser", "chrome")]
    await client.post("/v3/sdk/connect", json={"browserType": "firefox"}, headers=headers)
    assert await _devices(session) == [("alice", "dev-1", "browser", "firefox")]
    last_seen = await session.scalar(
        select(Device.last_seen_at).execution_options(populate_existing=True)
    )
    assert first_seen is not None
    assert last_seen is not None
    assert last_seen >= first_seen


async def test_one_device_id_for_two_users_is_two_devices(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    for headers in (creds.user("alice"), creds.user("bob"), other.user("alice")):
        response = await client.post("/v3/sdk/connect", headers={**headers, DEVICE: "shared"})
        assert response.status_code == 200
    assert await _devices(session) == [
        ("alice", "shared", None, None),
        ("bob", "shared", None, None),
        ("alice", "shared", None, None),
    ]


async def test_connect_reports_the_unread_count(client: httpx.AsyncClient, creds: Creds) -> None:
    for title in ("a", "b", "c"):
        sent = await client.post(
            "/v3/notifications", json=send_body("alice", title=title), headers=creds.backend()
        )
        assert sent.status_code == 202
    await client.post("/v3/notifications", json=send_body("bob"), headers=creds.backend())
    page = (await client.get("/v3/notifications", headers=creds.user("alice"))).json()
    newest, middle, _ = (n["id"] for n in page["data"])
    await client.get(f"/v3/notifications/{newest}", headers=creds.user("alice"))
    await client.post(f"/v3/notifications/{middle}/click", headers=creds.user("alice"))

    response = await client.post("/v3/sdk/connect", headers=creds.user("alice"))
    assert response.json()["unreadCount"] == 1
    response = await client.post("/v3/sdk/connect", headers=creds.user("bob"))
    assert response.json()["unreadCount"] == 1


async def test_connect_lists_only_this_apps_categories(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    created = []
    for identifier in ("comment", "promo"):
        response = await client.post(
            "/v3/categories",
            json={"identifier": identifier, "name": identifier.title()},
            headers=creds.backend(),
        )
        created.append(response.json())
    await client.post("/v3/categories", json={"identifier": "theirs"}, headers=other.backend())
    response = await client.post("/v3/sdk/connect", headers=creds.user("alice"))
    assert response.json()["app"]["categories"] == created


async def test_connect_reports_the_channels_that_can_deliver(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, admin: dict[str, str]
) -> None:
    app = await session.get(App, creds.id)
    assert app is not None
    app.channels = ["inApp", "webPush", "email", "slack"]
    await session.flush()
    # A channel is used when it is in the app's channels and has an enabled provider; web
    # push needs HERALD_VAPID_SUBJECT (unset here), and enableWebPush says whether it is used.
    response = await client.post("/v3/sdk/connect", headers=creds.user("alice"))
    assert response.json()["app"]["channels"] == ["inApp"]
    assert response.json()["app"]["enableWebPush"] is False
    created = await client.post(
        f"/admin/apps/{creds.id}/channels/email/providers",
        json={"provider": "smtp_email", "config": {"SMTP_HOST": "mx.test", "FROM_EMAIL": "a@b.co"}},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    await client.post(
        f"/admin/apps/{creds.id}/channels/slack/providers",
        json={"provider": "slack", "enabled": False},
        headers=admin,
    )
    response = await client.post("/v3/sdk/connect", headers=creds.user("alice"))
    assert response.json()["app"]["channels"] == ["inApp", "email"]


async def test_connect_as_a_backend_naming_the_user(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.post(
        "/v3/sdk/connect", headers=creds.backend(), params={"userIdentifier": "alice"}
    )
    assert response.status_code == 200
    assert await session.scalar(select(User.identifier).where(User.app_id == creds.id)) == "alice"
    unnamed = await client.post("/v3/sdk/connect", headers=creds.backend())
    assert _error(unnamed, 400) == [
        "userIdentifier is required when authenticating with the API secret"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"json": {"deviceType": 5}}, ["deviceType must be a string of at most 32 characters"]),
        (
            {"json": {"deviceType": "d" * 33}},
            ["deviceType must be a string of at most 32 characters"],
        ),
        (
            {"json": {"browserType": ["chrome"]}},
            ["browserType must be a string of at most 32 characters"],
        ),
        ({"json": ["browser"]}, ["request body must be a JSON object"]),
        ({"content": b"{deviceType"}, ["request body is not valid JSON"]),
        (
            {"headers": {DEVICE: "d" * 256}},
            ["X-ENGAGESPOT-DEVICE-ID must be at most 255 characters"],
        ),
    ],
)
async def test_connect_refusals(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    kwargs: dict[str, Any],
    message: list[str],
) -> None:
    headers = {
        **creds.user("alice"),
        "Content-Type": "application/json",
        **kwargs.pop("headers", {}),
    }
    response = await client.post("/v3/sdk/connect", headers=headers, **kwargs)
    assert _error(response, 400) == message
    assert await _devices(session) == []
    assert await session.scalar(select(User.id).where(User.app_id == creds.id)) is None


async def test_connect_needs_auth(client: httpx.AsyncClient, creds: Creds) -> None:
    assert _error(await client.post("/v3/sdk/connect", json={}), 401) == NO_AUTH
    wrong = await client.post(
        "/v3/sdk/connect", headers={**creds.user("alice"), "X-ENGAGESPOT-API-KEY": "unknown"}
    )
    _error(wrong, 401)
    only_key = await client.post("/v3/sdk/connect", headers={"X-ENGAGESPOT-API-KEY": creds.api_key})
    assert _error(only_key, 401) == NO_AUTH
