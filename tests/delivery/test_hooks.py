"""Webhooks (signed: X-WEBHOOK-SIGNATURE and Standard Webhooks), Slack, Discord and Teams
against an HTTP receiver on loopback; retries, Retry-After, rate limits and the SSRF guard."""

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from app.delivery.http import BlockedAddress, Client, allowed_ip
from app.worker import Worker
from tests.delivery.conftest import (
    ADMIN,
    add_provider,
    deliveries,
    inbox_titles,
    new_app,
    send,
    settled,
)
from tests.delivery.peers import HttpPeer, header_map

SIGNING_KEY = "whk-test-signing-key"


async def hook_app(api: httpx.AsyncClient, **config: Any) -> tuple[Any, dict[str, Any]]:
    creds = await new_app(api, ["inApp", "webhook"])
    provider = await add_provider(
        api, creds, "webhook", {"provider": "default_webhook", "config": config}
    )
    return creds, provider


def recipient(identifier: str, url: str) -> dict[str, str]:
    return {"identifier": identifier, "webhookUrl": url}


async def test_a_webhook_is_signed_for_standard_webhooks_and_plain_hmac(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, provider = await hook_app(api, SIGNING_KEY=SIGNING_KEY)
    assert provider["config"] == {"SIGNING_KEY": "********"}
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {
                "title": "Order shipped",
                "message": "Box 1",
                "url": "https://app.test/o",
            },
            "sendTo": {"recipients": [recipient("wh-1", http_peer.url("/hooks/signed"))]},
            "data": {"order": 7},
        },
    )
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "sent", delivery
    [hit] = http_peer.at("/hooks/signed")
    headers = header_map(hit)
    # An independent verifier (the standardwebhooks package) and a plain HMAC both agree.
    document = Webhook(SIGNING_KEY.encode()).verify(hit.body, headers)
    expected = hmac.new(SIGNING_KEY.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-webhook-signature"], expected)
    assert headers["webhook-id"] == delivery["messageId"]
    assert document["requestId"] == request_id
    assert document["recipient"] == {"identifier": "wh-1"}
    assert document["notification"]["title"] == "Order shipped"
    assert document["notification"]["data"] == {"order": 7}


async def test_500_500_200_is_delivered_once_with_three_attempts(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await hook_app(api)
    http_peer.scripts["/hooks/flaky"] = [(500, {}, "oops"), (500, {}, "oops")]
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Flaky"},
            "sendTo": {"recipients": [recipient("wh-2", http_peer.url("/hooks/flaky"))]},
        },
    )
    assert await inbox_titles(api, creds, "wh-2") == ["Flaky"]
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 3)
    assert [e["outcome"] for e in delivery["log"]] == ["transient", "transient", "sent"]
    assert [e["statusCode"] for e in delivery["log"]] == [500, 500, 200]
    assert len(http_peer.at("/hooks/flaky")) == 3


async def test_a_400_fails_at_once(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await hook_app(api)
    http_peer.scripts["/hooks/bad"] = [(400, {}, "bad payload")]
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Bad"},
            "sendTo": {"recipients": [recipient("wh-3", http_peer.url("/hooks/bad"))]},
        },
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["lastError"] == "HTTP 400: bad payload"
    assert len(http_peer.at("/hooks/bad")) == 1


async def test_a_429_with_retry_after_2_is_not_retried_before_2_seconds(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await hook_app(api)
    http_peer.scripts["/hooks/busy"] = [(429, {"Retry-After": "2"}, "slow down")]
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Busy"},
            "sendTo": {"recipients": [recipient("wh-4", http_peer.url("/hooks/busy"))]},
        },
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2)
    first, second = http_peer.at("/hooks/busy")
    assert second.at - first.at >= 2.0
    # The URL is the user's own: its 429 does not pause the provider for everyone.
    provider = (
        await api.get(f"/admin/apps/{creds.id}/channels/webhook/providers", headers=ADMIN)
    ).json()
    assert provider[0]["pausedUntil"] is None


async def test_a_private_address_is_refused_without_the_setting(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await hook_app(api)
    worker(allow_private_targets=False)
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "SSRF"},
            "sendTo": {"recipients": [recipient("wh-5", http_peer.url("/hooks/private"))]},
        },
    )
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "failed"
    assert "127.0.0.1" in delivery["lastError"]
    assert "HERALD_ALLOW_PRIVATE_TARGETS" in delivery["lastError"]
    assert http_peer.at("/hooks/private") == []


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_which_addresses_are_delivery_targets(address: str, allowed: bool) -> None:
    assert allowed_ip(ipaddress.ip_address(address)) is allowed


async def test_the_guard_checks_names_after_resolution_and_follows_no_redirects(
    http_peer: HttpPeer,
) -> None:
    guarded = Client(allow_private=False, timeout=5)
    try:
        with pytest.raises(BlockedAddress, match="localhost resolves to"):
            await guarded.post(f"http://localhost:{http_peer.port}/hooks/named", content=b"{}")
    finally:
        await guarded.aclose()
    open_client = Client(allow_private=True, timeout=5)
    try:
        http_peer.scripts["/hooks/redirect"] = [
            (302, {"Location": http_peer.url("/hooks/elsewhere")}, "")
        ]
        answer = await open_client.post(http_peer.url("/hooks/redirect"), content=b"{}")
        assert answer.status == 302
        assert http_peer.at("/hooks/elsewhere") == []
    finally:
        await open_client.aclose()


async def test_slack_discord_and_teams_get_their_json(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    http_peer.ok_body["/slack/user"] = "ok"
    http_peer.ok_body["/slack/team"] = "ok"
    http_peer.ok_body["/discord/user"] = '{"id": "d-42"}'
    creds = await new_app(api, ["inApp", "slack", "discord", "chat"])
    await add_provider(
        api,
        creds,
        "slack",
        {"provider": "slack", "config": {"WEBHOOK_URL": http_peer.url("/slack/team")}},
    )
    await add_provider(
        api, creds, "discord", {"provider": "discord", "config": {"USERNAME": "Herald"}}
    )
    await add_provider(api, creds, "chat", {"provider": "ms_teams"})
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {
                "title": "Deploy done",
                "message": "v1.2 is live",
                "url": "https://app.test/d",
            },
            "sendTo": {
                "recipients": [
                    {
                        "identifier": "chatty",
                        "slack": {"webhookUrl": http_peer.url("/slack/user")},
                        "discordWebhookUrl": http_peer.url("/discord/user"),
                        "msTeams": {"webhookUrl": http_peer.url("/teams/user")},
                    },
                    # No Slack URL of their own: the provider's URL (the team channel) is used.
                    "quiet",
                ]
            },
        },
    )
    found = await settled(api, creds, request_id, count=6)
    by = {(d["user"], d["channel"]): d for d in found}
    assert by[("quiet", "discord")]["status"] == "skipped"
    assert by[("quiet", "chat")]["status"] == "skipped"
    assert "msTeams.webhookUrl" in by[("quiet", "chat")]["lastError"]
    for key in [("chatty", "slack"), ("quiet", "slack"), ("chatty", "discord"), ("chatty", "chat")]:
        assert by[key]["status"] == "sent", by[key]

    [slack] = http_peer.at("/slack/user")
    body = json.loads(slack.body)
    assert body["text"].startswith("*Deploy done*\nv1.2 is live")
    assert body["blocks"][0]["type"] == "section"
    assert len(http_peer.at("/slack/team")) == 1

    [discord] = http_peer.at("/discord/user")
    assert discord.query == "wait=true"
    body = json.loads(discord.body)
    assert body["content"] == "**Deploy done**\nv1.2 is live"
    assert body["username"] == "Herald"
    assert body["embeds"][0]["url"] == "https://app.test/d"
    assert by[("chatty", "discord")]["providerMessageId"] == "d-42"

    [teams] = http_peer.at("/teams/user")
    body = json.loads(teams.body)
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "Deploy done"
    assert card["actions"][0]["url"] == "https://app.test/d"


async def test_a_provider_rate_limit_spaces_its_sends(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds = await new_app(api, ["webhook"])
    await add_provider(api, creds, "webhook", {"provider": "default_webhook", "rateLimit": 5})
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Paced"},
            "sendTo": {
                "recipients": [
                    recipient(f"rl-{i}", http_peer.url("/hooks/paced")) for i in range(8)
                ]
            },
        },
    )
    found = await settled(api, creds, request_id, count=8)
    assert {d["status"] for d in found} == {"sent"}
    hits = sorted(h.at for h in http_peer.at("/hooks/paced"))
    assert len(hits) == 8
    # 5 per second: 8 sends need at least 7 gaps of 0.2 s (a little slack for clocks).
    assert hits[-1] - hits[0] >= 7 * 0.2 - 0.1


async def test_the_delivery_log_filters_and_pages(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await hook_app(api)
    http_peer.scripts["/hooks/log-bad"] = [(404, {}, "gone")]
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Log"},
            "sendTo": {
                "recipients": [
                    recipient("log-ok", http_peer.url("/hooks/log-ok")),
                    recipient("log-bad", http_peer.url("/hooks/log-bad")),
                    "log-none",
                ]
            },
        },
    )
    await settled(api, creds, request_id, count=3)
    url = f"/admin/apps/{creds.id}/deliveries"
    failed = (await api.get(url, params={"status": "failed"}, headers=ADMIN)).json()
    assert [d["user"] for d in failed["data"]] == ["log-bad"]
    mine = (
        await api.get(url, params={"user": "log-ok", "channel": "webhook"}, headers=ADMIN)
    ).json()
    assert [(d["user"], d["status"]) for d in mine["data"]] == [("log-ok", "sent")]
    first = (await api.get(url, params={"limit": 2}, headers=ADMIN)).json()
    assert len(first["data"]) == 2
    rest = (
        await api.get(url, params={"limit": 2, "before": first["nextBefore"]}, headers=ADMIN)
    ).json()
    assert len(rest["data"]) == 1
    assert rest["nextBefore"] is None
    status = (await api.get(f"/admin/apps/{creds.id}/requests/{request_id}", headers=ADMIN)).json()
    assert status["deliveries"] == {"webhook": {"sent": 1, "failed": 1, "skipped": 1}}
    assert (await deliveries(api, creds, request_id))[0]["log"][0]["provider"] == "default_webhook"
    other = await new_app(api, ["webhook"])
    assert (
        await api.get(f"/admin/apps/{other.id}/requests/{request_id}/deliveries", headers=ADMIN)
    ).json() == []


async def test_address_keys_can_be_locked_to_the_backend(api: httpx.AsyncClient) -> None:
    creds = await new_app(api, ["inApp", "email"])
    user = creds.user("locked")
    assert (
        await api.put("/v3/profile", json={"email": "a@example.com"}, headers=user)
    ).status_code == 200
    await api.patch(
        f"/admin/apps/{creds.id}", json={"addressesFromBackendOnly": True}, headers=ADMIN
    )
    refused = await api.put(
        "/v3/profile", json={"webhookUrl": "http://169.254.169.254/"}, headers=user
    )
    assert refused.status_code == 403, refused.text
    patched = await api.patch(
        "/v3/profile",
        json=[{"op": "replace", "path": "/email", "value": "b@example.com"}],
        headers=user,
    )
    assert patched.status_code == 403
    assert (await api.put("/v3/profile", json={"name": "Ann"}, headers=user)).status_code == 200
    backend = await api.put(
        "/v3/profile?userIdentifier=locked",
        json={"email": "c@example.com"},
        headers=creds.backend(),
    )
    assert backend.status_code == 200, backend.text
    assert backend.json()["email"] == "c@example.com"
