"""APNs against an HTTP/2 server (hypercorn over TLS, ALPN h2) that verifies the ES256
provider token with the test key: one token reused across sends, the standard headers, a
stable apns-id across retries, dead tokens on 410 and BadDeviceToken only."""

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import trustme

from app.config import Settings
from app.delivery.channels import apns
from app.delivery.http import BlockedAddress, Client
from app.worker import Worker
from tests.delivery.conftest import send, settled
from tests.delivery.push_peers import (
    ApnsPeer,
    apns_error,
    apns_key,
    by_target,
    profile,
    push_app,
    put_user,
)

BUNDLE = "com.herald.test"


@pytest.fixture(scope="session")
def apns_peer(ca: trustme.CA) -> Iterator[ApnsPeer]:
    peer = ApnsPeer(ca).start()
    yield peer
    peer.stop()


@pytest.fixture
def apns_worker(worker: Callable[..., Worker], apns_peer: ApnsPeer) -> Callable[..., Worker]:
    def start(**overrides: Any) -> Worker:
        return worker(apns_base_url=apns_peer.url(), **overrides)

    return start


async def apns_app(api: httpx.AsyncClient, peer: ApnsPeer) -> tuple[Any, str, dict[str, Any]]:
    team = "T" + secrets.token_hex(4).upper()
    key_id, pem = peer.key(team)
    creds, provider = await push_app(
        api,
        "apns",
        {"TEAM_ID": team, "KEY_ID": key_id, "PRIVATE_KEY": pem, "BUNDLE_ID": BUNDLE},
    )
    return creds, team, provider


def device() -> str:
    return secrets.token_hex(32)


async def test_one_provider_token_signs_every_http2_push_with_the_standard_headers(
    api: httpx.AsyncClient, apns_peer: ApnsPeer, apns_worker: Callable[..., Worker]
) -> None:
    creds, team, provider = await apns_app(api, apns_peer)
    assert provider["config"]["PRIVATE_KEY"] == "********"
    phone, tablet, other = device(), device(), device()
    await put_user(api, creds, "ann", {"apns": {"tokens": [phone, tablet]}})
    await put_user(api, creds, "bob", {"apns": {"tokens": [other]}})
    apns_worker()
    first = await send(
        api,
        creds,
        {
            "notification": {"title": "Order shipped", "message": "Box 1", "url": "https://o/1"},
            "sendTo": {"recipients": ["ann"]},
            "data": {"order": 7},
            "override": {"channel": {"mobilePush": {"collapseKey": "order-1", "ttl": 3600}}},
        },
    )
    found = by_target(await settled(api, creds, first, count=2))
    assert {d["status"] for d in found.values()} == {"sent"}
    [hit] = apns_peer.to(phone)
    delivery = found[phone]
    assert hit.http_version == "2"
    created = int(datetime.fromisoformat(delivery["createdAt"].replace("Z", "+00:00")).timestamp())
    expected_id = str(uuid.UUID(hex=delivery["messageId"].removeprefix("msg_")))
    assert {k: v for k, v in hit.headers.items() if k.startswith("apns-")} == {
        "apns-topic": BUNDLE,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(created + 3600),
        "apns-collapse-id": "order-1",
        "apns-id": expected_id,
    }
    assert delivery["providerMessageId"] == expected_id
    assert hit.payload == {
        "aps": {"alert": {"title": "Order shipped", "body": "Box 1"}},
        "order": 7,
        "url": "https://o/1",
    }

    second = await send(
        api,
        creds,
        {
            "notification": {"title": "Quiet"},
            "sendTo": {"recipients": ["ann", "bob"]},
            "override": {
                "apns": {"apns-priority": 5, "aps": {"mutable-content": 1}, "thread": "t1"}
            },
        },
    )
    assert {d["status"] for d in await settled(api, creds, second, count=3)} == {"sent"}
    last = apns_peer.to(other)[-1]
    assert last.headers["apns-priority"] == "5"
    assert last.payload == {
        "aps": {"alert": {"title": "Quiet"}, "mutable-content": 1},
        "thread": "t1",
    }
    # Five pushes, two sends, one provider token (never minted per request).
    hits = [h for t in (phone, tablet, other) for h in apns_peer.to(t)]
    assert len(hits) == 5
    assert len({h.jwt for h in hits}) == 1
    assert hits[0].claims["iss"] == team
    assert {h.http_version for h in hits} == {"2"}


async def test_410_and_bad_device_token_remove_exactly_that_token_and_5xx_keeps_it(
    api: httpx.AsyncClient, apns_peer: ApnsPeer, apns_worker: Callable[..., Worker]
) -> None:
    creds, _, _ = await apns_app(api, apns_peer)
    live, gone, bad, elsewhere, busy = (device() for _ in range(5))
    apns_peer.scripts.update(
        {
            gone: [apns_error(410, "Unregistered")],
            bad: [apns_error(400, "BadDeviceToken")],
            elsewhere: [apns_error(400, "DeviceTokenNotForTopic")],
            busy: [apns_error(500, "InternalServerError"), apns_error(503, "ServiceUnavailable")],
        }
    )
    everything = [live, gone, bad, elsewhere, busy]
    await put_user(api, creds, "cat", {"apns": {"tokens": everything}})
    apns_worker()
    first = await send(
        api, creds, {"notification": {"title": "1"}, "sendTo": {"recipients": ["cat"]}}
    )
    found = by_target(await settled(api, creds, first, count=5))
    assert found[live]["status"] == "sent"
    for dead in (gone, bad):
        assert (found[dead]["status"], found[dead]["attempts"]) == ("failed", 1)
        assert found[dead]["lastError"].endswith("(token removed from `apns.tokens`)")
    assert (found[elsewhere]["status"], found[elsewhere]["attempts"]) == ("failed", 1)
    assert "DeviceTokenNotForTopic" in found[elsewhere]["lastError"]
    assert (found[busy]["status"], found[busy]["attempts"]) == ("sent", 3)
    assert [e["statusCode"] for e in found[busy]["log"]] == [500, 503, 200]
    # A retry is the same notification: the same apns-id each time.
    ids = {h.headers["apns-id"] for h in apns_peer.to(busy)}
    assert ids == {str(uuid.UUID(hex=found[busy]["messageId"].removeprefix("msg_")))}
    kept = [live, elsewhere, busy]
    assert await profile(api, creds, "cat") == {"apns": {"tokens": kept}}

    second = await send(
        api, creds, {"notification": {"title": "2"}, "sendTo": {"recipients": ["cat"]}}
    )
    again = await settled(api, creds, second, count=3)
    assert sorted(d["target"] for d in again) == sorted(kept)
    assert [len(apns_peer.to(t)) for t in everything] == [2, 1, 1, 2, 4]


async def test_an_expired_provider_token_is_replaced_once_and_a_bad_key_is_a_config_error(
    api: httpx.AsyncClient, apns_peer: ApnsPeer, apns_worker: Callable[..., Worker]
) -> None:
    creds, team, _ = await apns_app(api, apns_peer)
    token = device()
    await put_user(api, creds, "dan", {"apns": {"tokens": [token]}})
    apns_worker()
    apns_peer.expire_next.add(team)
    for title in ("first", "second"):
        request_id = await send(
            api, creds, {"notification": {"title": title}, "sendTo": {"recipients": ["dan"]}}
        )
        [delivery] = await settled(api, creds, request_id)
        assert (delivery["status"], delivery["attempts"]) == ("sent", 1)
    refused, *accepted = apns_peer.to(token)
    assert refused.jwt in apns_peer.expired
    # One new token in the same attempt, then kept for the next send.
    assert [h.jwt for h in accepted] == [accepted[0].jwt] * 2
    assert accepted[0].jwt != refused.jwt

    # A key APNs does not know: one fresh token, then a configuration error.
    pem, _ = apns_key()
    creds, _ = await push_app(
        api,
        "apns",
        {"TEAM_ID": team, "KEY_ID": "UNKNOWNKEY", "PRIVATE_KEY": pem, "BUNDLE_ID": BUNDLE},
    )
    await put_user(api, creds, "eve", {"apns": {"tokens": [token]}})
    before = len(apns_peer.refusals)
    request_id = await send(
        api, creds, {"notification": {"title": "x"}, "sendTo": {"recipients": ["eve"]}}
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["log"][0]["outcome"] == "config"
    assert "InvalidProviderToken" in delivery["lastError"]
    assert apns_peer.refusals[before:] == ["InvalidProviderToken"] * 2
    assert await profile(api, creds, "eve") == {"apns": {"tokens": [token]}}


def test_the_sandbox_flag_picks_apples_host_unless_a_base_url_is_set(
    channel_settings: Settings,
) -> None:
    apple = channel_settings.model_copy(update={"apns_base_url": None})
    assert apns.base_url(apple, {}) == "https://api.push.apple.com"
    assert apns.base_url(apple, {"SANDBOX": True}) == "https://api.sandbox.push.apple.com"
    aimed = channel_settings.model_copy(update={"apns_base_url": "https://proxy.test/"})
    assert apns.base_url(aimed, {"SANDBOX": True}) == "https://proxy.test"


async def test_the_http2_client_checks_the_address_of_every_connection(
    apns_peer: ApnsPeer,
) -> None:
    client = Client(allow_private=False, timeout=2)
    try:
        with pytest.raises(BlockedAddress):
            await client.http2().post(apns_peer.url(f"/3/device/{device()}"), content=b"{}")
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"channel": {"mobilePush": {"ttl": "soon"}}}, "override.channel.mobilePush.ttl must be"),
        ({"channel": {"mobilePush": {"priority": 10}}}, "override.channel.mobilePush.priority"),
        ({"channel": {"mobilePush": "loud"}}, "override.channel.mobilePush must be an object"),
        ({"apns": {"apns-priority": "10\r\nx-evil: 1"}}, "override.apns.apns-priority must be"),
        ({"apns": {"apns-unknown": "1"}}, "override.apns.apns-unknown is not an APNs header"),
    ],
)
async def test_a_malformed_push_override_is_refused_at_the_send(
    api: httpx.AsyncClient, apns_peer: ApnsPeer, override: dict[str, Any], message: str
) -> None:
    creds, _, _ = await apns_app(api, apns_peer)
    response = await api.post(
        "/v3/notifications",
        json={
            "notification": {"title": "x"},
            "sendTo": {"recipients": ["o"]},
            "override": override,
        },
        headers=creds.backend(),
    )
    assert response.status_code == 400, response.text
    assert message in str(response.json()["message"])
