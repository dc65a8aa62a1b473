"""Web push (`default_webpush`) against a push service on loopback over TLS: the message
decrypts with the subscription's private key (two decryptors), the VAPID JWT verifies with
the app's public key, the payload is the Engagespot service worker's, and the worker's click
works in normal and secure mode. Faults: 404/410 forget exactly the dead subscription, 5xx
forgets nothing (nor does a 413 or a 403), a 429's Retry-After is waited for, and no answer
after the hand-over is `unknown`, never a second copy."""

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.worker import Worker
from tests import db
from tests.conftest import asgi_client
from tests.delivery.conftest import (
    ADMIN,
    add_provider,
    api_app,
    deliveries,
    new_app,
    send,
    settled,
)
from tests.delivery.webpush_peer import Browser, PushService
from tests.factories import Creds
from tests.queue.support import wait_for

SUBJECT = "mailto:push-ops@herald-notifications.net"
DAY = 24 * 3600


@pytest.fixture(scope="session")
def push_service(ca: Any, ca_file: Any) -> Iterator[PushService]:
    service = PushService(ca, db.scratch_dir()).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def push_app(channel_settings: Settings, channel_engine: AsyncEngine) -> FastAPI:
    """The API of a server that can sign web push (HERALD_VAPID_SUBJECT is set)."""
    return api_app(channel_settings.model_copy(update={"vapid_subject": SUBJECT}), channel_engine)


@pytest.fixture
async def papi(push_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(push_app) as client:
        yield client


@pytest.fixture
def pusher(worker: Callable[..., Worker]) -> Callable[..., Worker]:
    """Start a worker that can sign web push."""

    def start(**overrides: Any) -> Worker:
        return worker(vapid_subject=SUBJECT, **overrides)

    return start


async def subscribe(
    api: httpx.AsyncClient, creds: Creds, user: str, device: str, browser: Browser
) -> None:
    response = await api.post(
        f"/v3/devices/{device}/webPushSubscription",
        json=browser.subscription(),
        headers=creds.user(user),
    )
    assert response.status_code == 200, response.text


async def connect(api: httpx.AsyncClient, creds: Creds, user: str) -> dict[str, Any]:
    response = await api.post(
        "/v3/sdk/connect", json={"deviceType": "browser"}, headers=creds.user(user)
    )
    assert response.status_code == 200, response.text
    app: dict[str, Any] = response.json()["app"]
    return app


async def endpoints_of(engine: AsyncEngine, creds: Creds, user: str) -> list[str]:
    """The endpoints still stored for the user's devices."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT d.web_push_subscription->>'endpoint' FROM devices d "
                "JOIN users u ON u.id = d.user_id WHERE u.app_id = :app AND u.identifier = :user "
                "AND d.web_push_subscription IS NOT NULL ORDER BY d.id"
            ),
            {"app": creds.id, "user": user},
        )
        return [r[0] for r in rows]


def signature(secret: str, user: str) -> str:
    digest = hmac.new(secret.encode(), user.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def test_a_push_decrypts_verifies_and_is_the_service_workers_message(
    papi: httpx.AsyncClient,
    push_service: PushService,
    pusher: Callable[..., Worker],
) -> None:
    creds = await new_app(papi, ["inApp", "webPush"])
    laptop, phone = push_service.browser("alice-laptop"), push_service.browser("alice-phone")
    await subscribe(papi, creds, "alice", "dev-laptop", laptop)
    await subscribe(papi, creds, "alice", "dev-phone", phone)
    described = await connect(papi, creds, "alice")
    # No provider was configured: web push is on because the server has a VAPID subject.
    assert described["channels"] == ["inApp", "webPush"]
    assert described["enableWebPush"] is True
    pusher()
    request_id = await send(
        papi,
        creds,
        {
            "notification": {
                "title": "Order shipped",
                "message": "Your box is on its way",
                "url": "https://shop.acme.io/orders/7",
                "icon": "https://shop.acme.io/icon.png",
            },
            "sendTo": {"recipients": ["alice"]},
        },
    )
    found = await settled(papi, creds, request_id, count=2)
    assert sorted(d["status"] for d in found) == ["sent", "sent"], found
    inbox = await papi.get("/v3/notifications", headers=creds.user("alice"))
    [item] = inbox.json()["data"]

    for browser in ("alice-laptop", "alice-phone"):
        [push] = push_service.to(browser)  # decrypted by both decryptors in the peer
        assert len(push.body) <= 4096
        # The JWT verified with the key in k=, which is the app's VAPID key from connect.
        assert push.k == described["publicKey"]
        assert push.claims["aud"] == push_service.origin
        assert push.claims["sub"] == SUBJECT
        assert time.time() < push.claims["exp"] <= time.time() + DAY
        assert push.headers["ttl"] == str(28 * DAY)
        assert push.headers["urgency"] == "normal"
        assert "topic" not in push.headers
        assert push.headers["content-encoding"] == "aes128gcm"
        assert push.message == {
            "data": {
                "engagespot": {
                    "apiKey": creds.api_key,
                    "userIdentifier": "alice",
                    "userSignature": signature(creds.api_secret, "alice"),
                },
                "customerData": {
                    "id": item["id"],
                    "title": "Order shipped",
                    "body": "Your box is on its way",
                    "icon": "https://shop.acme.io/icon.png",
                    "url": "https://shop.acme.io/orders/7",
                },
            }
        }
    # One VAPID token served both requests to this origin (cached, not minted per request).
    assert len({p.headers["authorization"] for p in push_service.pushes[-2:]}) == 1
    assert {d["providerMessageId"].rsplit("/", 1)[0] for d in found} == {f"{push_service.origin}/m"}
    # The implicit default provider became a row on first use, shown by the admin API.
    listed = await papi.get(f"/admin/apps/{creds.id}/channels/webPush/providers", headers=ADMIN)
    assert [(p["provider"], p["enabled"]) for p in listed.json()] == [("default_webpush", True)]


async def test_ttl_urgency_and_topic_from_the_send_and_the_provider(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["webPush"])
    await add_provider(
        papi, creds, "webPush", {"provider": "default_webpush", "config": {"TTL": "3600"}}
    )
    await subscribe(papi, creds, "bob", "d1", push_service.browser("bob-1"))
    pusher()
    plain = await send(
        papi, creds, {"notification": {"title": "A"}, "sendTo": {"recipients": ["bob"]}}
    )
    await settled(papi, creds, plain)
    overridden = await send(
        papi,
        creds,
        {
            "notification": {"title": "B"},
            "sendTo": {"recipients": ["bob"]},
            "override": {
                "channel": {"webPush": {"ttl": 60, "urgency": "high", "topic": "order-7"}},
            },
        },
    )
    await settled(papi, creds, overridden)
    provider_level = await send(
        papi,
        creds,
        {
            "notification": {"title": "C"},
            "sendTo": {"recipients": ["bob"]},
            "override": {
                "channel": {"webPush": {"ttl": 60}},
                "default_webpush": {"_config": {"TTL": 120, "URGENCY": "low"}},
            },
        },
    )
    await settled(papi, creds, provider_level)
    first, second, third = push_service.to("bob-1")
    assert (first.headers["ttl"], first.headers["urgency"]) == ("3600", "normal")
    assert (second.headers["ttl"], second.headers["urgency"]) == ("60", "high")
    assert second.headers["topic"] == "order-7"
    # Provider-level overrides win (Engagespot: "the highest priority").
    assert (third.headers["ttl"], third.headers["urgency"]) == ("120", "low")
    # Without an inbox row (inApp is not a channel of this app) the id is null.
    assert first.message["data"]["customerData"]["id"] is None
    assert first.message["data"]["customerData"]["title"] == "A"


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"channel": {"webPush": {"ttl": 0}}}, "override.channel.webPush.ttl must be"),
        ({"channel": {"webPush": {"ttl": 3e6}}}, "override.channel.webPush.ttl must be"),
        ({"channel": {"webPush": {"urgency": "now"}}}, "override.channel.webPush.urgency"),
        ({"channel": {"webPush": {"topic": "a b"}}}, "override.channel.webPush.topic"),
        ({"channel": {"webPush": "x"}}, "override.channel.webPush must be an object"),
        ({"default_webpush": {"_config": {"TTL": -1}}}, "override.default_webpush._config.TTL"),
        ({"default_webpush": {"_config": {"X": 1}}}, "override.default_webpush._config.X"),
    ],
)
async def test_a_malformed_web_push_override_is_refused(
    papi: httpx.AsyncClient, override: dict[str, Any], problem: str
) -> None:
    creds = await new_app(papi, ["webPush"])
    response = await papi.post(
        "/v3/notifications",
        json={
            "notification": {"title": "x"},
            "sendTo": {"recipients": ["u"]},
            "override": override,
        },
        headers=creds.backend(),
    )
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert problem in (message if isinstance(message, str) else " ".join(message))


async def test_provider_config_is_checked_and_one_per_app(papi: httpx.AsyncClient) -> None:
    creds = await new_app(papi, ["webPush"])
    path = f"/admin/apps/{creds.id}/channels/webPush/providers"
    for config, problem in (
        ({"TTL": 2_419_201}, "config.TTL must be between 1 and 2419200"),
        ({"URGENCY": "soon"}, "config.URGENCY must be one of very-low, low, normal, high"),
    ):
        bad = await papi.post(
            path, json={"provider": "default_webpush", "config": config}, headers=ADMIN
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["message"] == [problem]
    first = await papi.post(path, json={"provider": "default_webpush"}, headers=ADMIN)
    assert first.status_code == 201, first.text
    second = await papi.post(path, json={"provider": "default_webpush"}, headers=ADMIN)
    assert second.status_code == 409, second.text
    assert "already has its default_webpush provider" in second.json()["message"]


async def test_web_push_is_off_without_a_subject_or_when_disabled(
    api: httpx.AsyncClient, papi: httpx.AsyncClient, push_service: PushService
) -> None:
    creds = await new_app(papi, ["inApp", "webPush"])
    # The same app on a server without HERALD_VAPID_SUBJECT: not a channel that can deliver.
    without = await connect(api, creds, "carol")
    assert (without["channels"], without["enableWebPush"]) == (["inApp"], False)
    with_subject = await connect(papi, creds, "carol")
    assert with_subject["channels"] == ["inApp", "webPush"]
    provider = await add_provider(
        papi, creds, "webPush", {"provider": "default_webpush", "enabled": False}
    )
    disabled = await connect(papi, creds, "carol")
    assert (disabled["channels"], disabled["enableWebPush"]) == (["inApp"], False)
    # Nothing is routed to web push: the send writes no web-push delivery.
    await subscribe(papi, creds, "carol", "d", push_service.browser("carol"))
    request_id = await send(
        papi, creds, {"notification": {"title": "x"}, "sendTo": {"recipients": ["carol"]}}
    )
    assert await deliveries(papi, creds, request_id) == []
    enabled = await papi.patch(
        f"/admin/apps/{creds.id}/providers/{provider['id']}", json={"enabled": True}, headers=ADMIN
    )
    assert enabled.status_code == 200
    assert (await connect(papi, creds, "carol"))["enableWebPush"] is True


async def test_410_and_404_forget_exactly_the_dead_subscriptions_and_5xx_keeps_its_own(
    papi: httpx.AsyncClient,
    push_service: PushService,
    pusher: Callable[..., Worker],
    channel_engine: AsyncEngine,
) -> None:
    creds = await new_app(papi, ["webPush"])
    names = ["dave-gone", "dave-missing", "dave-flaky", "dave-down", "dave-big", "dave-live"]
    for name in names:
        await subscribe(papi, creds, "dave", name, push_service.browser(name))
    push_service.gone.add("dave-gone")
    push_service.browsers.pop("dave-missing")  # the service forgot it: 404
    push_service.scripts["dave-flaky"] = [(503, {}, "busy"), (500, {}, "oops")]
    push_service.scripts["dave-down"] = [(503, {}, "down")] * 3
    push_service.scripts["dave-big"] = [(413, {}, "PayloadTooLarge")]
    pusher(delivery_max_attempts=3)
    request_id = await send(
        papi, creds, {"notification": {"title": "one"}, "sendTo": {"recipients": ["dave"]}}
    )
    settled_now = await settled(papi, creds, request_id, count=6)
    # The log shows where each went, never the subscription's keys.
    assert all(d["target"].startswith("https://") for d in settled_now)
    assert not any("p256dh" in d["target"] or "auth" in d["target"] for d in settled_now)
    found = {d["target"].split("/push/")[1]: d for d in settled_now}
    assert {n: d["status"] for n, d in found.items()} == {
        "dave-gone": "failed",
        "dave-missing": "failed",
        "dave-flaky": "sent",
        "dave-down": "failed",
        "dave-big": "failed",
        "dave-live": "sent",
    }
    assert "subscription removed" in found["dave-gone"]["lastError"]
    # 413 is permanent for this message, not a sign the subscription is dead.
    assert (found["dave-big"]["attempts"], found["dave-big"]["lastError"]) == (
        1,
        "HTTP 413: PayloadTooLarge",
    )
    assert "subscription removed" in found["dave-missing"]["lastError"]
    assert "gave up after 3 attempts" in found["dave-down"]["lastError"]
    assert found["dave-flaky"]["attempts"] == 3
    origin = push_service.origin
    assert await endpoints_of(channel_engine, creds, "dave") == [
        f"{origin}/push/dave-flaky",
        f"{origin}/push/dave-down",
        f"{origin}/push/dave-big",
        f"{origin}/push/dave-live",
    ]
    # The next send goes to the live subscriptions only.
    before = {n: push_service.hits(n) for n in names}
    again = await send(
        papi, creds, {"notification": {"title": "two"}, "sendTo": {"recipients": ["dave"]}}
    )
    second = await settled(papi, creds, again, count=4)
    assert len(second) == 4
    assert {n: push_service.hits(n) - before[n] for n in names} == {
        "dave-gone": 0,
        "dave-missing": 0,
        "dave-flaky": 1,
        "dave-down": 1,
        "dave-big": 1,
        "dave-live": 1,
    }


async def test_a_429_is_retried_only_after_its_retry_after(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["webPush"])
    await subscribe(papi, creds, "erin", "d", push_service.browser("erin-slow"))
    await subscribe(papi, creds, "erin", "d2", push_service.browser("erin-other"))
    push_service.scripts["erin-slow"] = [(429, {"Retry-After": "2"}, "slow down")]
    pusher()
    request_id = await send(
        papi, creds, {"notification": {"title": "x"}, "sendTo": {"recipients": ["erin"]}}
    )
    found = await settled(papi, creds, request_id, count=2)
    assert [d["status"] for d in found] == ["sent", "sent"]
    [(_, status, _, refused_at)] = [r for r in push_service.refused if r[0] == "erin-slow"]
    [accepted] = push_service.to("erin-slow")
    assert status == 429
    # The retry ladder says 0.2 s; Retry-After says 2 s, and wins.
    assert accepted.at - refused_at >= 2.0
    slow = next(d for d in found if "erin-slow" in d["target"])
    assert [e["outcome"] for e in slow["log"]] == ["transient", "sent"]
    # The other subscription at the same push service was not held back by the 429.
    [other] = push_service.to("erin-other")
    assert other.at < accepted.at - 1.0


async def test_the_click_with_the_payloads_signature_marks_the_notification_read(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["inApp", "webPush"])
    for user in ("frank", "grace"):
        await subscribe(papi, creds, user, "d", push_service.browser(f"click-{user}"))
    pusher()

    async def pushed(user: str, title: str) -> dict[str, Any]:
        request_id = await send(
            papi, creds, {"notification": {"title": title}, "sendTo": {"recipients": [user]}}
        )
        await settled(papi, creds, request_id)
        message: dict[str, Any] = push_service.to(f"click-{user}")[-1].message["data"]
        return message

    def click_headers(meta: dict[str, str]) -> dict[str, str]:
        # What the worker sends (worker/src/index.ts markAsClicked).
        return {
            "Content-Type": "application/json",
            "X-ENGAGESPOT-API-KEY": meta["apiKey"],
            "X-ENGAGESPOT-USER-ID": meta["userIdentifier"],
            "X-ENGAGESPOT-USER-SIGNATURE": meta["userSignature"],
        }

    async def read_at(user: str, notification_id: int) -> str | None:
        response = await papi.get(f"/v3/notifications/{notification_id}", headers=creds.backend())
        assert response.status_code == 200, response.text
        value: str | None = response.json()["clickedAt"]
        return value

    normal = await pushed("frank", "normal mode")
    # The worker's URL is `<api>/v3/` + `/notifications/...`: a double slash.
    clicked = await papi.post(
        f"/v3//notifications/{normal['customerData']['id']}/click",
        headers=click_headers(normal["engagespot"]),
    )
    assert clicked.status_code == 200, clicked.text
    assert await read_at("frank", normal["customerData"]["id"]) is not None

    keys = await papi.post(f"/admin/apps/{creds.id}/signing-keys", headers=ADMIN)
    assert keys.status_code in (200, 201), keys.text
    secure = await papi.patch(f"/admin/apps/{creds.id}", json={"secureMode": True}, headers=ADMIN)
    assert secure.status_code == 200, secure.text
    message = await pushed("grace", "secure mode")
    nid = message["customerData"]["id"]
    meta = message["engagespot"]
    unsigned = await papi.post(f"/v3/notifications/{nid}/click", headers=creds.user("grace"))
    assert unsigned.status_code == 401
    forged = {**meta, "userSignature": signature("not-the-secret", "grace")}
    refused = await papi.post(f"/v3/notifications/{nid}/click", headers=click_headers(forged))
    assert refused.status_code == 401
    # Frank's signature does not make anyone Grace.
    borrowed = {**normal["engagespot"], "userIdentifier": "grace"}
    assert (
        await papi.post(f"/v3/notifications/{nid}/click", headers=click_headers(borrowed))
    ).status_code == 401
    assert await read_at("grace", nid) is None
    # Narrow: the signature opens the click route only, not the inbox.
    listing = await papi.get("/v3/notifications", headers=click_headers(meta))
    assert listing.status_code == 401
    clicked = await papi.post(f"/v3//notifications/{nid}/click", headers=click_headers(meta))
    assert clicked.status_code == 200, clicked.text
    assert clicked.json()["id"] == nid
    assert await read_at("grace", nid) is not None
    # A user can click only their own notification, signature or not.
    other = await papi.post(
        f"/v3/notifications/{normal['customerData']['id']}/click", headers=click_headers(meta)
    )
    assert other.status_code == 404


async def test_a_refused_vapid_token_fails_as_configuration_and_keeps_the_subscription(
    papi: httpx.AsyncClient,
    push_service: PushService,
    pusher: Callable[..., Worker],
    channel_engine: AsyncEngine,
) -> None:
    creds = await new_app(papi, ["webPush"])
    await subscribe(papi, creds, "hank", "d", push_service.browser("hank"))
    push_service.scripts["hank"] = [(403, {}, '{"reason":"BadJwtToken"}')]
    pusher()
    request_id = await send(
        papi, creds, {"notification": {"title": "x"}, "sendTo": {"recipients": ["hank"]}}
    )
    [found] = await settled(papi, creds, request_id)
    assert found["status"] == "failed"
    assert [e["outcome"] for e in found["log"]] == ["config"]
    assert "BadJwtToken" in found["lastError"]
    assert await endpoints_of(channel_engine, creds, "hank") == [f"{push_service.origin}/push/hank"]


async def test_a_long_message_arrives_shortened_within_4096_bytes(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["webPush"])
    await subscribe(papi, creds, "ivy", "d", push_service.browser("ivy"))
    pusher()
    request_id = await send(
        papi,
        creds,
        {
            "notification": {"title": "Digest", "message": "word " * 1900, "url": "https://a.io"},
            "sendTo": {"recipients": ["ivy"]},
        },
    )
    [found] = await settled(papi, creds, request_id)
    assert found["status"] == "sent", found
    [push] = push_service.to("ivy")  # the service refuses more than 4096 bytes with 413
    customer = push.message["data"]["customerData"]
    assert (customer["title"], customer["url"]) == ("Digest", "https://a.io")
    assert customer["body"].startswith("word word")
    assert customer["body"].endswith("…")


async def test_no_answer_after_the_hand_over_is_unknown_and_never_resent(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["webPush"])
    await subscribe(papi, creds, "jack", "d", push_service.browser("jack"))
    push_service.hold["jack"] = 2.0
    pusher(delivery_http_timeout=0.5)
    held = await send(
        papi, creds, {"notification": {"title": "held"}, "sendTo": {"recipients": ["jack"]}}
    )
    [found] = await settled(papi, creds, held)
    assert found["status"] == "unknown", found
    assert found["attempts"] == 1
    # The sentinel: a later message to the same browser; by then a resend would have come.
    sentinel = await send(
        papi, creds, {"notification": {"title": "sentinel"}, "sendTo": {"recipients": ["jack"]}}
    )
    [after] = await settled(papi, creds, sentinel)
    assert after["status"] == "sent"

    async def titles() -> list[str] | None:
        got = [p.message["data"]["customerData"]["title"] for p in push_service.to("jack")]
        return got if len(got) >= 2 else None

    # The held message did reach the browser (late): one copy, never a second.
    assert sorted(await wait_for(titles, within=10, what="both messages")) == ["held", "sentinel"]


async def test_the_workers_fan_out_routes_web_push_too(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["inApp", "webPush"])
    await subscribe(papi, creds, "kim", "d", push_service.browser("kim"))
    pusher()
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    # Scheduled: the worker's fan-out writes the inbox row and the delivery, not the 202.
    request_id = await send(
        papi,
        creds,
        {"notification": {"title": "later"}, "sendTo": {"recipients": ["kim"]}, "sendAt": soon},
    )
    assert await deliveries(papi, creds, request_id) == []
    [found] = await settled(papi, creds, request_id)
    assert found["status"] == "sent", found
    [push] = push_service.to("kim")
    inbox = await papi.get("/v3/notifications", headers=creds.user("kim"))
    assert push.message["data"]["customerData"]["id"] == inbox.json()["data"][0]["id"]


async def test_a_signature_from_before_a_secret_rotation_clicks_during_the_grace(
    papi: httpx.AsyncClient, push_service: PushService, pusher: Callable[..., Worker]
) -> None:
    creds = await new_app(papi, ["inApp", "webPush"])
    await subscribe(papi, creds, "lea", "d", push_service.browser("lea"))
    hmac_on = await papi.patch(f"/admin/apps/{creds.id}", json={"hmacEnabled": True}, headers=ADMIN)
    assert hmac_on.status_code == 200, hmac_on.text
    pusher()
    ids = []
    for title in ("first", "second"):
        request_id = await send(
            papi, creds, {"notification": {"title": title}, "sendTo": {"recipients": ["lea"]}}
        )
        await settled(papi, creds, request_id)
        ids.append(push_service.to("lea")[-1].message["data"]["customerData"]["id"])
    meta = push_service.to("lea")[-1].message["data"]["engagespot"]
    headers = {
        "X-ENGAGESPOT-API-KEY": meta["apiKey"],
        "X-ENGAGESPOT-USER-ID": "lea",
        "X-ENGAGESPOT-USER-SIGNATURE": meta["userSignature"],
    }
    rotated = await papi.post(f"/admin/apps/{creds.id}/rotate-secret", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    # The message was signed with the old secret: it still clicks while that one is in grace.
    assert (
        await papi.post(f"/v3/notifications/{ids[0]}/click", headers=headers)
    ).status_code == 200
    ended = await papi.post(
        f"/admin/apps/{creds.id}/rotate-secret", params={"graceSeconds": 0}, headers=ADMIN
    )
    assert ended.status_code == 200, ended.text
    assert (
        await papi.post(f"/v3/notifications/{ids[1]}/click", headers=headers)
    ).status_code == 401
