"""POST /v3/devices/{deviceId}/webPushSubscription."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.devices.models import Device
from app.errors import NO_AUTH
from app.users.models import User
from tests.factories import Creds
from tests.factories import error_message as _error

SUBSCRIPTION: dict[str, Any] = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc:def",
    "expirationTime": None,
    "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA", "auth": "tBHItJI5svbpez7KI4CCXg"},
}


async def _devices(session: AsyncSession) -> list[tuple[str, str, str | None, Any]]:
    rows = await session.execute(
        select(
            User.identifier,
            Device.device_identifier,
            Device.device_type,
            Device.web_push_subscription,
        )
        .join(User, User.id == Device.user_id)
        .order_by(Device.id)
        .execution_options(populate_existing=True)
    )
    return [(u, d, t, s) for u, d, t, s in rows]


async def _subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], device: str, body: Any
) -> httpx.Response:
    return await client.post(
        f"/v3/devices/{device}/webPushSubscription", json=body, headers=headers
    )


async def test_save_a_subscription(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await _subscribe(client, creds.user("alice"), "dev-1", SUBSCRIPTION)
    assert response.status_code == 200
    assert response.json() == {"message": "Web push subscription saved"}
    assert await _devices(session) == [("alice", "dev-1", "browser", SUBSCRIPTION)]


async def test_extra_keys_are_dropped_and_expiration_kept(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    body = {
        **SUBSCRIPTION,
        "expirationTime": 1735689600000,
        "keys": {**SUBSCRIPTION["keys"], "other": "x"},
        "unexpected": True,
    }
    response = await _subscribe(client, creds.user("alice"), "dev-1", body)
    assert response.status_code == 200
    ((_, _, _, stored),) = await _devices(session)
    assert stored == {**SUBSCRIPTION, "expirationTime": 1735689600000}


async def test_a_new_subscription_replaces_the_old_one(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _subscribe(client, creds.user("alice"), "dev-1", SUBSCRIPTION)
    renewed = {**SUBSCRIPTION, "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/x"}
    response = await _subscribe(client, creds.user("alice"), "dev-1", renewed)
    assert response.status_code == 200
    assert await _devices(session) == [("alice", "dev-1", "browser", renewed)]


async def test_subscription_joins_the_device_from_connect(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    connected = await client.post(
        "/v3/sdk/connect",
        json={"deviceType": "browser", "browserType": "firefox"},
        headers={**creds.user("alice"), "X-ENGAGESPOT-DEVICE-ID": "dev-1"},
    )
    assert connected.status_code == 200
    await _subscribe(client, creds.user("alice"), "dev-1", SUBSCRIPTION)
    assert await _devices(session) == [("alice", "dev-1", "browser", SUBSCRIPTION)]
    browser = await session.scalar(select(Device.browser_type))
    assert browser == "firefox"
    # A later connect without a body keeps the subscription.
    await client.post(
        "/v3/sdk/connect", headers={**creds.user("alice"), "X-ENGAGESPOT-DEVICE-ID": "dev-1"}
    )
    assert await _devices(session) == [("alice", "dev-1", "browser", SUBSCRIPTION)]


async def test_devices_belong_to_one_user_of_one_app(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    bob_sub = {**SUBSCRIPTION, "endpoint": "https://push.example/bob"}
    await _subscribe(client, creds.user("alice"), "shared", SUBSCRIPTION)
    await _subscribe(client, creds.user("bob"), "shared", bob_sub)
    await _subscribe(client, other.user("alice"), "shared", SUBSCRIPTION)
    assert await _devices(session) == [
        ("alice", "shared", "browser", SUBSCRIPTION),
        ("bob", "shared", "browser", bob_sub),
        ("alice", "shared", "browser", SUBSCRIPTION),
    ]
    app_ids = await session.scalars(
        select(User.app_id).join(Device, Device.user_id == User.id).order_by(Device.id)
    )
    assert list(app_ids) == [creds.id, creds.id, other.id]


async def test_backend_subscribes_for_a_named_user(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.post(
        "/v3/devices/dev-1/webPushSubscription",
        json=SUBSCRIPTION,
        headers=creds.backend(),
        params={"userIdentifier": "alice"},
    )
    assert response.status_code == 200
    assert await _devices(session) == [("alice", "dev-1", "browser", SUBSCRIPTION)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {**SUBSCRIPTION, "endpoint": "http://insecure.example/push"},
            ["endpoint must match ^https:// regular expression"],
        ),
        ({"keys": SUBSCRIPTION["keys"]}, ["endpoint is required"]),
        ({"endpoint": SUBSCRIPTION["endpoint"]}, ["keys is required"]),
        ({**SUBSCRIPTION, "keys": {"auth": "x"}}, ["keys.p256dh is required"]),
        ({**SUBSCRIPTION, "keys": {"p256dh": "x", "auth": ""}}, ["keys.auth should not be empty"]),
        ({**SUBSCRIPTION, "keys": "p256dh"}, ["keys must be an object"]),
        ({**SUBSCRIPTION, "endpoint": 42}, ["endpoint must be a string"]),
        ({**SUBSCRIPTION, "expirationTime": "soon"}, ["expirationTime must be a number"]),
        (
            {**SUBSCRIPTION, "endpoint": "https://x/" + "a" * 2048},
            ["endpoint must be shorter than or equal to 2048 characters"],
        ),
        ([SUBSCRIPTION], ["request body must be an object"]),
        ("https://push.example", ["request body must be an object"]),
    ],
)
async def test_invalid_subscriptions_are_400(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    body: Any,
    message: list[str],
) -> None:
    response = await _subscribe(client, creds.user("alice"), "dev-1", body)
    assert _error(response, 400) == message
    assert await _devices(session) == []


async def test_missing_or_malformed_body_is_400(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    path = "/v3/devices/dev-1/webPushSubscription"
    missing = await client.post(path, headers=creds.user("alice"))
    assert _error(missing, 400) == ["request body is required"]
    malformed = await client.post(
        path,
        content=b'{"endpoint": ',
        headers={**creds.user("alice"), "Content-Type": "application/json"},
    )
    assert _error(malformed, 400) == ["request body is not valid JSON"]
    assert await _devices(session) == []


async def test_device_id_is_bounded(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await _subscribe(client, creds.user("alice"), "d" * 256, SUBSCRIPTION)
    assert _error(response, 400) == ["device_id must be shorter than or equal to 255 characters"]
    ok = await _subscribe(client, creds.user("alice"), "d" * 255, SUBSCRIPTION)
    assert ok.status_code == 200
    assert [d for _, d, _, _ in await _devices(session)] == ["d" * 255]


async def test_subscribing_needs_a_user(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    path = "/v3/devices/dev-1/webPushSubscription"
    assert _error(await client.post(path, json=SUBSCRIPTION), 401) == NO_AUTH
    wrong = await client.post(
        path, json=SUBSCRIPTION, headers={**creds.user("alice"), "X-ENGAGESPOT-API-KEY": "x"}
    )
    _error(wrong, 401)
    unnamed = await client.post(path, json=SUBSCRIPTION, headers=creds.backend())
    assert _error(unnamed, 400) == [
        "userIdentifier is required when authenticating with the API secret"
    ]
    assert await _devices(session) == []
