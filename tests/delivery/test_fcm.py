"""FCM HTTP v1 against a token endpoint and an FCM endpoint on loopback over TLS: the
service-account grant (verified with the test key), the v1 body, the cached access token,
dead tokens by FCM's structured error codes, Retry-After."""

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme

from app.worker import Worker
from tests.delivery.conftest import ADMIN, new_app, send, settled
from tests.delivery.push_peers import (
    FcmPeer,
    by_target,
    fcm_error,
    profile,
    push_app,
    put_user,
    service_account,
)


@pytest.fixture(scope="session")
def fcm_peer(ca: trustme.CA) -> Iterator[FcmPeer]:
    peer = FcmPeer(ca).start()
    yield peer
    peer.stop()


@pytest.fixture
def fcm_worker(worker: Callable[..., Worker], fcm_peer: FcmPeer) -> Callable[..., Worker]:
    def start(**overrides: Any) -> Worker:
        return worker(fcm_base_url=fcm_peer.url(), **overrides)

    return start


def tokens(*names: str) -> list[str]:
    """Device tokens unique to one test (the peer's scripts are shared by the session)."""
    run = secrets.token_hex(3)
    return [f"{n}-{run}" for n in names]


async def test_the_grant_and_the_v1_body_are_what_google_verifies(
    api: httpx.AsyncClient, fcm_peer: FcmPeer, fcm_worker: Callable[..., Worker]
) -> None:
    account = fcm_peer.account()
    # The service-account JSON as an object (or its text): stored sealed, shown masked.
    creds, provider = await push_app(api, "fcm", {"SERVICE_ACCOUNT": account})
    assert provider["config"] == {"SERVICE_ACCOUNT": "********"}
    phone, tablet, other = tokens("phone", "tablet", "other")
    await put_user(api, creds, "ann", {"fcm": {"tokens": [phone, tablet]}})
    await put_user(api, creds, "bob", {"fcm": {"tokens": [other]}})
    fcm_worker()
    first = await send(
        api,
        creds,
        {
            "notification": {
                "title": "Order shipped",
                "message": "Box 1",
                "url": "https://app.test/o/1",
            },
            "sendTo": {"recipients": ["ann"]},
            "data": {"order": 7, "gift": True, "items": [1, 2], "note": "fragile", "none": None},
            "override": {
                "fcm": {
                    "android": {"priority": "HIGH", "notification": {"channel_id": "orders"}},
                    "data": {"extra": 5},
                    "_config": {},
                }
            },
        },
    )
    sent = await settled(api, creds, first, count=2)
    assert {d["status"] for d in sent} == {"sent"}, sent
    assert {d["target"] for d in sent} == {phone, tablet}
    [hit] = fcm_peer.to(phone)
    assert sent[0]["providerMessageId"].startswith("projects/herald-test/messages/")
    message = hit.body["message"]
    assert hit.project == "herald-test"
    assert message["token"] == phone
    assert message["notification"] == {"title": "Order shipped", "body": "Box 1"}
    # Every data value a string (FCM refuses others); the override's data merged in.
    assert message["data"] == {
        "order": "7",
        "gift": "true",
        "items": "[1,2]",
        "note": "fragile",
        "none": "null",
        "extra": "5",
        "url": "https://app.test/o/1",
    }
    assert message["android"] == {"priority": "HIGH", "notification": {"channel_id": "orders"}}
    assert "_config" not in message

    second = await send(
        api,
        creds,
        {"notification": {"title": "Again"}, "sendTo": {"recipients": ["ann", "bob"]}},
    )
    assert {d["status"] for d in await settled(api, creds, second, count=3)} == {"sent"}
    # One grant served both sends: five requests, one access token.
    [grant] = [g for g in fcm_peer.grants if g.claims["iss"] == account["client_email"]]
    assert grant.claims["aud"] == fcm_peer.url("/token")
    assert grant.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert grant.claims["exp"] - grant.claims["iat"] == 3600
    assert grant.header["kid"] == account["private_key_id"]
    hits = [h for t in (phone, tablet, other) for h in fcm_peer.to(t)]
    assert len(hits) == 5
    assert {h.bearer for h in hits} == {grant.token}


async def test_dead_tokens_leave_the_profile_and_the_next_send_reaches_the_live_ones(
    api: httpx.AsyncClient, fcm_peer: FcmPeer, fcm_worker: Callable[..., Worker]
) -> None:
    creds, _ = await push_app(api, "fcm", {"SERVICE_ACCOUNT": fcm_peer.account()})
    live, dead, mismatch, bad_token, bad_payload, busy = tokens(
        "live", "dead", "mismatch", "badtoken", "badpayload", "busy"
    )
    unavailable = fcm_error(503, "UNAVAILABLE", "UNAVAILABLE")
    fcm_peer.scripts.update(
        {
            dead: [(404, {}, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))],
            mismatch: [(403, {}, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"))],
            bad_token: [
                (
                    400,
                    {},
                    fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.token"),
                )
            ],
            bad_payload: [
                (
                    400,
                    {},
                    fcm_error(
                        400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.android.ttl"
                    ),
                )
            ],
            busy: [(503, {}, unavailable)] * 3,
        }
    )
    everything = [live, dead, mismatch, bad_token, bad_payload, busy]
    await put_user(api, creds, "cat", {"fcm": {"tokens": everything}, "name": "Cat"})
    fcm_worker(delivery_max_attempts=3)
    first = await send(
        api, creds, {"notification": {"title": "One"}, "sendTo": {"recipients": ["cat"]}}
    )
    found = by_target(await settled(api, creds, first, count=6))

    assert found[live]["status"] == "sent"
    for gone in (dead, mismatch, bad_token):
        assert found[gone]["status"] == "failed"
        assert found[gone]["attempts"] == 1
        assert found[gone]["lastError"].endswith("(token removed from `fcm.tokens`)")
    assert "UNREGISTERED" in found[dead]["lastError"]
    assert "SENDER_ID_MISMATCH" in found[mismatch]["lastError"]
    # A 400 that does not name the token is the payload's fault: the token stays.
    assert (found[bad_payload]["status"], found[bad_payload]["attempts"]) == ("failed", 1)
    assert "removed" not in found[bad_payload]["lastError"]
    # 5xx is the service's trouble, never the token's.
    assert (found[busy]["status"], found[busy]["attempts"]) == ("failed", 3)
    assert found[busy]["lastError"].startswith("gave up after 3 attempts")
    assert [e["statusCode"] for e in found[busy]["log"]] == [503, 503, 503]
    kept = [live, bad_payload, busy]
    assert await profile(api, creds, "cat") == {"fcm": {"tokens": kept}, "name": "Cat"}

    second = await send(
        api, creds, {"notification": {"title": "Two"}, "sendTo": {"recipients": ["cat"]}}
    )
    again = await settled(api, creds, second, count=3)
    assert sorted(d["target"] for d in again) == sorted(kept)
    assert {d["status"] for d in again} == {"sent"}
    assert [len(fcm_peer.to(t)) for t in everything] == [2, 1, 1, 1, 2, 4]


async def test_a_429_with_retry_after_is_waited_out(
    api: httpx.AsyncClient, fcm_peer: FcmPeer, fcm_worker: Callable[..., Worker]
) -> None:
    creds, _ = await push_app(api, "fcm", {"SERVICE_ACCOUNT": fcm_peer.account()})
    [token] = tokens("quota")
    quota = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
    fcm_peer.scripts[token] = [(429, {"Retry-After": "1"}, quota)]
    await put_user(api, creds, "dan", {"fcm": {"tokens": [token]}})
    fcm_worker()
    request_id = await send(
        api, creds, {"notification": {"title": "Q"}, "sendTo": {"recipients": ["dan"]}}
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2)
    assert [e["outcome"] for e in delivery["log"]] == ["transient", "sent"]
    first, second = fcm_peer.to(token)
    # The retry ladder here is 0.2 s: only Retry-After explains a second's wait.
    assert second.at - first.at >= 1.0
    assert await profile(api, creds, "dan") == {"fcm": {"tokens": [token]}}


async def test_the_access_token_is_refreshed_after_it_expires_and_when_refused(
    api: httpx.AsyncClient, fcm_peer: FcmPeer, fcm_worker: Callable[..., Worker]
) -> None:
    account = fcm_peer.account()
    creds, _ = await push_app(api, "fcm", {"SERVICE_ACCOUNT": account})
    [token] = tokens("refresh")
    await put_user(api, creds, "eve", {"fcm": {"tokens": [token]}})
    fcm_worker()

    def grants() -> list[str]:
        return [g.token for g in fcm_peer.grants if g.claims["iss"] == account["client_email"]]

    async def one(title: str) -> dict[str, Any]:
        request_id = await send(
            api, creds, {"notification": {"title": title}, "sendTo": {"recipients": ["eve"]}}
        )
        [delivery] = await settled(api, creds, request_id)
        errors = [e.get("error") for e in delivery["log"]]
        assert (delivery["status"], delivery["attempts"]) == ("sent", 1), errors
        return delivery

    fcm_peer.expires_in = 2
    try:
        await one("first")
        await one("cached")
        assert len(grants()) == 1
        granted_at = next(g.at for g in fcm_peer.grants if g.token == grants()[0])
        # Kept until shortly before expiry (10 % of its life early): then a fresh grant.
        await asyncio.sleep(max(0.0, granted_at + 1.9 - time.monotonic()))
        await one("after expiry")
    finally:
        fcm_peer.expires_in = 3599
    assert len(grants()) == 2
    assert fcm_peer.to(token)[-1].bearer == grants()[1]

    # Revoked early (FCM answers 401): one new grant, then the send goes through.
    del fcm_peer.live[grants()[1]]
    await one("after revocation")
    assert len(grants()) == 3
    assert [h.bearer for h in fcm_peer.to(token)[-2:]] == grants()[1:]


async def test_a_service_account_google_refuses_is_a_configuration_error(
    api: httpx.AsyncClient, fcm_peer: FcmPeer, fcm_worker: Callable[..., Worker]
) -> None:
    unknown, _ = service_account(fcm_peer.url("/token"))
    creds, _ = await push_app(api, "fcm", {"SERVICE_ACCOUNT": unknown})
    [token] = tokens("never")
    await put_user(api, creds, "fay", {"fcm": {"tokens": [token]}})
    fcm_worker()
    request_id = await send(
        api, creds, {"notification": {"title": "N"}, "sendTo": {"recipients": ["fay"]}}
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["log"][0]["outcome"] == "config"
    assert "invalid_grant" in delivery["lastError"]
    assert fcm_peer.to(token) == []
    assert await profile(api, creds, "fay") == {"fcm": {"tokens": [token]}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "config.SERVICE_ACCOUNT must be a JSON object"),
        ({"project_id": "p"}, "config.SERVICE_ACCOUNT has no `client_email`"),
        (
            {"project_id": "p", "client_email": "a@p", "private_key": "nope"},
            "config.SERVICE_ACCOUNT has a `private_key` that is not a PEM private key",
        ),
        (
            {"project_id": "p/../../x?", "client_email": "a@p", "private_key": "nope"},
            "config.SERVICE_ACCOUNT has a `project_id` that is not a Google Cloud project id",
        ),
    ],
)
async def test_an_unusable_service_account_is_refused_when_saved(
    api: httpx.AsyncClient, value: object, message: str
) -> None:
    creds = await new_app(api, ["mobilePush"])
    response = await api.post(
        f"/admin/apps/{creds.id}/channels/mobilePush/providers",
        json={"provider": "fcm", "config": {"SERVICE_ACCOUNT": value}},
        headers=ADMIN,
    )
    assert response.status_code == 400, response.text
    [found] = response.json()["message"]
    assert found.startswith(message), found
    assert "nope" not in response.text
