"""E-mail through a real SMTP server (aiosmtpd: STARTTLS required, AUTH required, a trustme
certificate trusted through SSL_CERT_FILE), and through SendGrid-, Mailgun- and Postmark-shaped
HTTP APIs."""

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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
from tests.delivery.peers import PASSWORD, USER, HttpPeer, SmtpPeer, free_port
from tests.factories import Creds
from tests.queue.support import wait_for

PDF = base64.b64encode(b"%PDF-1.4 tiny test file").decode()


@pytest.fixture
def smtp(ca: trustme.CA) -> Iterator[SmtpPeer]:
    peer = SmtpPeer(ca).start()
    yield peer
    peer.stop()


def smtp_config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),  # config values may arrive as strings
        "SMTP_USERNAME": USER,
        "SMTP_PASSWORD": PASSWORD,
        "REQUIRE_TLS": "true",
        "FROM_NAME": "Herald Tests",
        "FROM_EMAIL": "noreply@herald.test",
        **extra,
    }


async def email_app(
    api: httpx.AsyncClient, *configs: dict[str, Any]
) -> tuple[Creds, list[dict[str, Any]]]:
    creds = await new_app(api, ["inApp", "email"])
    providers = [
        await add_provider(
            api,
            creds,
            "email",
            {"provider": "smtp_email", "name": f"relay-{i}", "priority": i, "config": c},
        )
        for i, c in enumerate(configs, start=1)
    ]
    return creds, providers


POSTMARK = {"SERVER_API_TOKEN": "t", "FROM_EMAIL": "a@herald.test"}


async def api_email_app(
    api: httpx.AsyncClient, provider: str, config: dict[str, Any]
) -> tuple[Creds, dict[str, Any]]:
    """An app whose one e-mail provider is the e-mail API `provider`, and that provider."""
    creds = await new_app(api, ["email"])
    return creds, await add_provider(api, creds, "email", {"provider": provider, "config": config})


async def test_an_email_arrives_with_headers_cc_bcc_and_attachment(
    api: httpx.AsyncClient, smtp: SmtpPeer, worker: Callable[..., Worker]
) -> None:
    creds, [provider] = await email_app(api, smtp_config(smtp.port))
    assert provider["config"]["SMTP_PASSWORD"] == "********"
    assert provider["config"]["SMTP_PORT"] == smtp.port
    worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {
                "title": "Your invoice",
                "message": "It is attached.",
                "url": "https://app.test/i/1",
            },
            "sendTo": {"recipients": [{"identifier": "ann", "email": "ann@example.com"}]},
            "data": {
                "attachments": [
                    {"name": "invoice.pdf", "contentType": "application/pdf", "content": PDF}
                ]
            },
            "override": {
                "channel": {
                    "email": {
                        "subject": "Invoice #1",
                        "fromName": "Billing",
                        "replyTo": "billing@herald.test",
                        "cc": ["boss@example.com"],
                        "bcc": ["audit@example.com"],
                    }
                }
            },
        },
    )
    # The inbox row is there when the 202 is (the e-mail is the worker's business).
    assert await inbox_titles(api, creds, "ann") == ["Your invoice"]
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "sent", delivery
    assert (delivery["provider"], delivery["providerId"], delivery["attempts"]) == (
        "smtp_email",
        provider["id"],
        1,
    )
    [got] = smtp.handler.received
    assert got.mail_from == "noreply@herald.test"
    assert got.rcpt_tos == ["ann@example.com", "boss@example.com", "audit@example.com"]
    m = got.message
    assert m["Subject"] == "Invoice #1"
    assert m["From"] == "Billing <noreply@herald.test>"
    assert m["To"] == "ann@example.com"
    assert m["Cc"] == "boss@example.com"
    assert m["Reply-To"] == "billing@herald.test"
    assert m["Bcc"] is None
    assert b"audit@example.com" not in got.raw
    assert m["Message-ID"] == delivery["messageId"]
    body = m.get_body(preferencelist=("plain",))
    assert body is not None
    assert "It is attached." in body.get_content()
    html = m.get_body(preferencelist=("html",))
    assert html is not None
    assert 'href="https://app.test/i/1"' in html.get_content()
    [attachment] = list(m.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == base64.b64decode(PDF)
    assert smtp.handler.logins, "AUTH was used (after STARTTLS: the server requires it)"
    status = await api.get(f"/admin/apps/{creds.id}/requests/{request_id}", headers=ADMIN)
    assert status.json()["deliveries"] == {"email": {"sent": 1}}


async def test_the_password_is_sealed_and_masked(
    api: httpx.AsyncClient, channel_engine: AsyncEngine, smtp: SmtpPeer
) -> None:
    creds, [provider] = await email_app(api, smtp_config(smtp.port))
    async with channel_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT CAST(config AS text) || coalesce(secrets, '') "
                    "FROM providers WHERE id = :id"
                ),
                {"id": provider["id"]},
            )
        ).scalar_one()
    assert PASSWORD not in stored
    assert "SMTP_PASSWORD" in stored
    patched = await api.patch(
        f"/admin/apps/{creds.id}/providers/{provider['id']}",
        json={"config": {"SMTP_PORT": 2525, "FROM_NAME": "Renamed"}},
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    config = patched.json()["config"]
    assert (config["SMTP_PORT"], config["FROM_NAME"], config["SMTP_PASSWORD"]) == (
        2525,
        "Renamed",
        "********",
    )
    listed = await api.get(f"/admin/apps/{creds.id}/channels/email/providers", headers=ADMIN)
    assert PASSWORD not in listed.text


async def test_smtp_down_then_up_delivers_exactly_once_and_the_inbox_does_not_wait(
    api: httpx.AsyncClient, ca: trustme.CA, channel_database: str, worker: Callable[..., Worker]
) -> None:
    port = free_port()
    creds, _ = await email_app(api, smtp_config(port))
    worker()
    listener = await asyncpg.connect(channel_database.replace("+asyncpg", "", 1))
    events: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("herald_events", lambda *args: events.put_nowait(args[3]))
    try:
        request_id = await send(
            api,
            creds,
            {"notification": {"title": "Hi"}, "sendTo": {"recipients": ["bob@example.com"]}},
        )
        assert await inbox_titles(api, creds, "bob@example.com") == ["Hi"]
        event = await asyncio.wait_for(events.get(), 5)
        assert json.loads(event)["e"] == "NEW_NOTIFICATION"
    finally:
        await listener.close()

    async def retrying() -> dict[str, Any] | None:
        [d] = await deliveries(api, creds, request_id)
        return d if d["status"] == "retrying" and d["attempts"] >= 1 else None

    first = await wait_for(retrying, within=10, what="a failed first attempt")
    assert first["log"][0]["outcome"] == "unreachable"
    peer = SmtpPeer(ca, port=port).start()
    try:
        [delivery] = await settled(api, creds, request_id)
        assert delivery["status"] == "sent", delivery
        assert len(peer.handler.to("bob@example.com")) == 1
    finally:
        peer.stop()


async def test_a_retry_sends_the_same_message_id(
    api: httpx.AsyncClient, smtp: SmtpPeer, worker: Callable[..., Worker]
) -> None:
    creds, _ = await email_app(api, smtp_config(smtp.port))
    smtp.handler.busy.add("cat@example.com")
    worker()
    request_id = await send(
        api,
        creds,
        {"notification": {"title": "Later"}, "sendTo": {"recipients": ["cat@example.com"]}},
    )

    async def refused_once() -> bool | None:
        [d] = await deliveries(api, creds, request_id)
        return True if d["attempts"] >= 1 and d["status"] == "retrying" else None

    await wait_for(refused_once, within=10, what="a 452 at RCPT")
    smtp.handler.busy.clear()
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "sent"
    assert delivery["attempts"] >= 2
    assert [entry["statusCode"] for entry in delivery["log"]][:1] == [452]
    [got] = smtp.handler.to("cat@example.com")
    assert got.message["Message-ID"] == delivery["messageId"]


async def test_the_first_relay_down_the_second_delivers_and_the_log_names_it(
    api: httpx.AsyncClient, smtp: SmtpPeer, worker: Callable[..., Worker]
) -> None:
    creds, [down, up] = await email_app(api, smtp_config(free_port()), smtp_config(smtp.port))
    worker()
    request_id = await send(
        api,
        creds,
        {"notification": {"title": "Failover"}, "sendTo": {"recipients": ["dan@example.com"]}},
    )
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "sent", delivery
    assert delivery["providerId"] == up["id"]
    assert [(e["providerId"], e["outcome"]) for e in delivery["log"]] == [
        (down["id"], "unreachable"),
        (up["id"], "sent"),
    ]
    assert len(smtp.handler.to("dan@example.com")) == 1


async def test_a_rejected_recipient_fails_at_once_without_failover(
    api: httpx.AsyncClient, smtp: SmtpPeer, worker: Callable[..., Worker]
) -> None:
    # The second relay listens nowhere: a failover would show in the log as unreachable.
    creds, [first, _] = await email_app(api, smtp_config(smtp.port), smtp_config(free_port()))
    smtp.handler.dead.add("gone@example.com")
    worker()
    request_id = await send(
        api,
        creds,
        {"notification": {"title": "Bounce"}, "sendTo": {"recipients": ["gone@example.com"]}},
    )
    [delivery] = await settled(api, creds, request_id)
    assert (delivery["status"], delivery["attempts"], delivery["providerId"]) == (
        "failed",
        1,
        first["id"],
    )
    assert "550" in delivery["lastError"]


async def test_a_recipient_without_an_email_is_skipped_with_the_reason(
    api: httpx.AsyncClient, smtp: SmtpPeer
) -> None:
    creds, _ = await email_app(api, smtp_config(smtp.port))
    request_id = await send(
        api, creds, {"notification": {"title": "Hi"}, "sendTo": {"recipients": ["no-email"]}}
    )
    # Written with the 202: no worker needed to say so.
    [delivery] = await deliveries(api, creds, request_id)
    assert delivery["status"] == "skipped"
    assert delivery["lastError"] == "no e-mail address in the profile (key `email`)"
    assert await inbox_titles(api, creds, "no-email") == ["Hi"]


async def test_auth_is_never_sent_over_plaintext(
    api: httpx.AsyncClient, worker: Callable[..., Worker]
) -> None:
    class Plain:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    port = free_port()
    plain = Controller(Plain(), hostname="127.0.0.1", port=port)
    plain.start()
    try:
        config = smtp_config(port)
        config.pop("REQUIRE_TLS")
        creds, _ = await email_app(api, config)
        worker()
        request_id = await send(
            api,
            creds,
            {"notification": {"title": "Hi"}, "sendTo": {"recipients": ["eve@example.com"]}},
        )
        [delivery] = await settled(api, creds, request_id)
        assert delivery["status"] == "failed"
        assert "refusing to send SMTP AUTH without TLS" in delivery["lastError"]
    finally:
        plain.stop()


# -- HTTP e-mail APIs -----------------------------------------------------------------------


async def test_sendgrid_mailgun_and_postmark_get_their_requests(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    http_peer.ok_body["/postmark/email"] = '{"ErrorCode": 0, "MessageID": "pm-1"}'
    http_peer.ok_body["/mailgun/v3/mg.herald.test/messages"] = (
        '{"id": "<mg-1>", "message": "Queued"}'
    )
    configs = {
        "sendgrid_email": {"API_KEY": "SG.key", "FROM_EMAIL": "sg@herald.test", "FROM_NAME": "SG"},
        "mailgun": {"apiKey": "mg-key", "domain": "mg.herald.test", "fromEmail": "mg@herald.test"},
        "postmark_email": {"SERVER_API_TOKEN": "pm-token", "FROM_EMAIL": "pm@herald.test"},
    }
    sent: dict[str, tuple[Creds, str]] = {}
    for provider, config in configs.items():
        creds, _ = await api_email_app(api, provider, config)
        sent[provider] = (
            creds,
            await send(
                api,
                creds,
                {
                    "notification": {"title": f"Via {provider}", "message": "Body"},
                    "sendTo": {"recipients": [f"{provider}@example.com"]},
                    "data": {
                        "attachments": [
                            {"name": "a.pdf", "contentType": "application/pdf", "content": PDF}
                        ]
                    },
                    "override": {"channel": {"email": {"cc": ["cc@example.com"]}}},
                },
            ),
        )
    worker()
    for provider, (creds, request_id) in sent.items():
        [delivery] = await settled(api, creds, request_id)
        assert delivery["status"] == "sent", (provider, delivery)

    [sg] = http_peer.at("/sendgrid/v3/mail/send")
    assert sg.headers["authorization"] == "Bearer SG.key"
    body = json.loads(sg.body)
    assert body["personalizations"] == [
        {"to": [{"email": "sendgrid_email@example.com"}], "cc": [{"email": "cc@example.com"}]}
    ]
    assert body["from"] == {"email": "sg@herald.test", "name": "SG"}
    assert body["subject"] == "Via sendgrid_email"
    assert body["attachments"][0]["filename"] == "a.pdf"

    [mg] = http_peer.at("/mailgun/v3/mg.herald.test/messages")
    assert mg.headers["authorization"] == "Basic " + base64.b64encode(b"api:mg-key").decode()
    assert mg.headers["content-type"].startswith("multipart/form-data")
    assert b'name="to"' in mg.body
    assert b"mailgun@example.com" in mg.body
    assert b'filename="a.pdf"' in mg.body
    assert sent["mailgun"][0]
    assert (await deliveries(api, *sent["mailgun"]))[0]["providerMessageId"] == "<mg-1>"

    [pm] = http_peer.at("/postmark/email")
    assert pm.headers["x-postmark-server-token"] == "pm-token"
    body = json.loads(pm.body)
    assert (body["From"], body["To"], body["Cc"], body["Subject"]) == (
        "pm@herald.test",
        "postmark_email@example.com",
        "cc@example.com",
        "Via postmark_email",
    )
    assert body["Attachments"][0]["Name"] == "a.pdf"


async def test_provider_overrides_apply_and_are_not_stored_in_clear(
    api: httpx.AsyncClient,
    http_peer: HttpPeer,
    channel_engine: AsyncEngine,
    worker: Callable[..., Worker],
) -> None:
    creds, _ = await api_email_app(
        api, "sendgrid_email", {"API_KEY": "SG.stored", "FROM_EMAIL": "a@herald.test"}
    )
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Override"},
            "sendTo": {"recipients": ["ov@example.com"]},
            "override": {
                "sendgrid_email": {"_config": {"API_KEY": "SG.per-send"}, "categories": ["x"]}
            },
        },
    )
    async with channel_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT CAST(payload AS text) FROM notification_requests "
                    "WHERE id = CAST(:id AS uuid)"
                ),
                {"id": request_id},
            )
        ).scalar_one()
    assert "SG.per-send" not in stored
    before = len(http_peer.at("/sendgrid/v3/mail/send"))
    worker()
    await settled(api, creds, request_id)
    hit = http_peer.at("/sendgrid/v3/mail/send")[before]
    assert hit.headers["authorization"] == "Bearer SG.per-send"
    assert json.loads(hit.body)["categories"] == ["x"]


async def test_an_email_api_rate_limit_pauses_the_provider_until_retry_after(
    api: httpx.AsyncClient, http_peer: HttpPeer, worker: Callable[..., Worker]
) -> None:
    creds, provider = await api_email_app(api, "postmark_email", POSTMARK)
    http_peer.ok_body["/postmark/email"] = '{"ErrorCode": 0, "MessageID": "pm"}'
    http_peer.scripts["/postmark/email"] = [(429, {"Retry-After": "2"}, "slow down")]
    before = len(http_peer.at("/postmark/email"))
    worker()
    request_id = await send(
        api, creds, {"notification": {"title": "RL"}, "sendTo": {"recipients": ["rl@example.com"]}}
    )
    [delivery] = await settled(api, creds, request_id)
    assert delivery["status"] == "sent"
    first, second = http_peer.at("/postmark/email")[before:]
    assert second.at - first.at >= 2.0
    paused = (
        await api.get(f"/admin/apps/{creds.id}/providers/{provider['id']}", headers=ADMIN)
    ).json()
    assert paused["pausedUntil"] is not None


async def test_an_email_api_that_cannot_be_reached_is_retried_not_unknown(
    api: httpx.AsyncClient, worker: Callable[..., Worker]
) -> None:
    # A refused connection proves nothing left, even though the request was about to.
    creds, _ = await api_email_app(api, "postmark_email", POSTMARK)
    worker(postmark_base_url=f"http://127.0.0.1:{free_port()}")
    request_id = await send(
        api,
        creds,
        {"notification": {"title": "Down"}, "sendTo": {"recipients": ["down@example.com"]}},
    )

    async def retried() -> dict[str, Any] | None:
        [d] = await deliveries(api, creds, request_id)
        return d if len(d["log"]) >= 2 else None

    delivery = await wait_for(retried, within=30, what="a second attempt")
    assert delivery["status"] in ("retrying", "sending", "failed")
    assert [e["outcome"] for e in delivery["log"][:2]] == ["unreachable", "unreachable"]
