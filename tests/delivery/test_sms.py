"""SMS and WhatsApp through Twilio-, Plivo- and Textlocal-shaped APIs over TLS (trustme,
trusted through SSL_CERT_FILE), with Twilio's signed status callbacks sent back to a Herald
listening on loopback over TLS."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.db import make_sessionmaker
from app.main import create_app
from app.worker import Worker
from tests import db
from tests.delivery.conftest import ADMIN, add_provider, deliveries, new_app, send
from tests.delivery.peers import free_port
from tests.delivery.sms_peer import (
    FROM,
    PLIVO_ID,
    PLIVO_TOKEN,
    SID,
    TEXTLOCAL_KEY,
    TOKEN,
    Message,
    SmsPeer,
    twilio_error,
)
from tests.factories import Creds
from tests.queue.support import wait_for

TWILIO = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": FROM}


@pytest.fixture(scope="module")
def peer(ca: trustme.CA) -> Iterator[SmsPeer]:
    started = SmsPeer(ca).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
async def public_url(
    channel_settings: Settings, channel_engine: AsyncEngine, ca: trustme.CA
) -> AsyncIterator[str]:
    """Herald itself on 127.0.0.1 over TLS, where Twilio's callbacks arrive; its settings
    have HERALD_PUBLIC_URL, which it checks the signatures against."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    app = create_app(channel_settings.model_copy(update={"public_url": url}))
    app.state.engine = channel_engine
    app.state.sessionmaker = make_sessionmaker(channel_engine)
    pem = db.scratch_dir() / "herald.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = uvicorn.Server(
        uvicorn.Config(
            app, ssl_certfile=str(pem), ssl_keyfile=str(pem), log_level="error", lifespan="off"
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(
        lambda: asyncio.sleep(0, True if server.started else None), within=10, what="Herald"
    )
    yield url
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def sms_worker(
    worker: Callable[..., Worker], peer: SmsPeer, public_url: str
) -> Callable[..., Worker]:
    def start(**overrides: Any) -> Worker:
        return worker(
            **{
                "twilio_base_url": peer.url("/twilio"),
                "plivo_base_url": peer.url("/plivo"),
                "textlocal_base_url": peer.url("/textlocal"),
                "public_url": public_url,
                **overrides,
            }
        )

    return start


async def sms_app(
    api: httpx.AsyncClient, channel: str, *providers: tuple[str, dict[str, Any]]
) -> tuple[Creds, list[dict[str, Any]]]:
    creds = await new_app(api, ["inApp", channel])
    made = [
        await add_provider(
            api, creds, channel, {"provider": p, "name": f"{p}-{i}", "priority": i, "config": c}
        )
        for i, (p, c) in enumerate(providers, start=1)
    ]
    return creds, made


def text_to(*people: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "notification": {"title": "Your code", "message": "123456"},
        "sendTo": {"recipients": [{"identifier": u, "phoneNumber": n} for u, n in people]},
        **extra,
    }


async def until(
    api: httpx.AsyncClient,
    creds: Creds,
    request_id: str,
    statuses: set[str],
    *,
    count: int = 1,
    within: float = 20,
) -> list[dict[str, Any]]:
    """The send's deliveries once `count` of them have one of `statuses`."""

    async def probe() -> list[dict[str, Any]] | None:
        found = await deliveries(api, creds, request_id)
        return found if sum(d["status"] in statuses for d in found) >= count else None

    return await wait_for(probe, within=within, what=f"{count} deliveries in {statuses}")


def one(messages: list[Message]) -> Message:
    assert len(messages) == 1, messages
    return messages[0]


async def called(future: Any) -> list[int]:
    answers: list[int] = await asyncio.wrap_future(future)
    return answers


# -- Twilio SMS ----------------------------------------------------------------------------


async def test_an_sms_goes_out_and_callbacks_mark_it_delivered(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker], public_url: str
) -> None:
    creds, [provider] = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    assert provider["config"]["TWILIO_AUTH_TOKEN"] == "********"
    sms_worker()
    number = "+14155550101"
    request_id = await send(api, creds, text_to(("ann", number)))
    [delivery] = await until(api, creds, request_id, {"sent"})

    message = one(peer.twilio_to(number))
    assert message.fields["To"] == number
    assert message.fields["From"] == FROM
    assert message.fields["Body"] == "Your code\n123456"
    callback = f"{public_url}/v3/providers/{provider['id']}/callback"
    assert message.fields["StatusCallback"] == callback
    assert delivery["providerMessageId"] == message.sid
    assert delivery["attempts"] == 1

    assert await called(peer.callback(message, ["delivered"])) == [204]
    [delivery] = await until(api, creds, request_id, {"delivered"})
    # A late `sent` (callbacks may arrive out of order) does not move it back; a repeated
    # `delivered` is recorded once.
    assert await called(peer.callback(message, ["sent", "delivered"])) == [204, 204]
    [delivery] = await deliveries(api, creds, request_id)
    assert delivery["status"] == "delivered"
    outcomes = [e["outcome"] for e in delivery["log"]]
    assert outcomes == ["sent", "callback: delivered", "callback: sent (kept delivered)"]
    assert delivery["log"][1]["provider"] == "twilio_sms"
    status = await api.get(f"/admin/apps/{creds.id}/requests/{request_id}", headers=ADMIN)
    assert status.json()["deliveries"] == {"sms": {"delivered": 1}}
    listed = await api.get(f"/admin/apps/{creds.id}/deliveries?status=delivered", headers=ADMIN)
    assert [d["id"] for d in listed.json()["data"]] == [delivery["id"]]


async def test_an_undelivered_callback_says_why(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    sms_worker()
    number = "+14155550102"
    request_id = await send(api, creds, text_to(("ann", number)))
    await until(api, creds, request_id, {"sent"})
    message = one(peer.twilio_to(number))
    assert await called(answers_again(peer, message)) == [204]
    [delivery] = await until(api, creds, request_id, {"undelivered"})
    assert delivery["lastError"] == "Twilio 30003: Unreachable destination"
    # An exact replay is recorded once.
    assert await called(answers_again(peer, message)) == [204]
    [again] = await deliveries(api, creds, request_id)
    assert again["status"] == "undelivered"
    assert [e["outcome"] for e in again["log"]] == ["sent", "callback: undelivered"]


async def test_a_21610_in_a_callback_opts_the_number_out_too(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    """With a Messaging Service, Twilio may accept the message and report the opt-out later."""
    creds, _ = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    sms_worker()
    number = "+14155550116"
    first = await send(api, creds, text_to(("ann", number)))
    await until(api, creds, first, {"sent"})
    message = one(peer.twilio_to(number))
    answers = peer.callback(message, ["failed"], ErrorCode="21610", ErrorMessage="Unsubscribed")
    assert await called(answers) == [204]
    [delivery] = await until(api, creds, first, {"undelivered"})
    assert delivery["lastError"] == "Twilio 21610: Unsubscribed (number marked opted out of sms)"
    second = await send(api, creds, text_to(("ann", number)))
    [skipped] = await until(api, creds, second, {"skipped"})
    assert "opted out of sms" in skipped["lastError"]
    assert len(peer.twilio_to(number)) == 1


def answers_again(peer: SmsPeer, message: Message) -> Any:
    return peer.callback(
        message, ["undelivered"], ErrorCode="30003", ErrorMessage="Unreachable destination"
    )


async def test_forged_unsigned_and_replayed_callbacks_change_nothing(
    api: httpx.AsyncClient,
    peer: SmsPeer,
    sms_worker: Callable[..., Worker],
    public_url: str,
    ca: trustme.CA,
) -> None:
    creds, [provider, plivo] = await sms_app(
        api,
        "sms",
        ("twilio_sms", TWILIO),
        ("plivo_sms", {"AUTH_ID": PLIVO_ID, "AUTH_TOKEN": PLIVO_TOKEN, "SENDER": "HERALD"}),
    )
    sms_worker()
    number = "+14155550103"
    request_id = await send(api, creds, text_to(("ann", number)))
    [before] = await until(api, creds, request_id, {"sent"})
    message = one(peer.twilio_to(number))
    url = f"{public_url}/v3/providers/{provider['id']}/callback"
    params = {"MessageSid": message.sid or "", "MessageStatus": "delivered", "AccountSid": SID}
    good = RequestValidator(TOKEN).compute_signature(url, params)
    forged = RequestValidator("not-the-auth-token").compute_signature(url, params)
    elsewhere = RequestValidator(TOKEN).compute_signature(
        f"{public_url}/v3/providers/{plivo['id']}/callback", params
    )
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    async with httpx.AsyncClient(verify=context, timeout=10) as client:

        async def post(target: str, body: dict[str, str], signature: str | None) -> httpx.Response:
            headers = {"X-Twilio-Signature": signature} if signature is not None else {}
            return await client.post(target, data=body, headers=headers)

        refused = {
            "unsigned": await post(url, params, None),
            "empty signature": await post(url, params, ""),
            "forged": await post(url, params, forged),
            # A valid signature, replayed with another status: the signature covers the fields.
            "other params": await post(url, {**params, "MessageStatus": "read"}, good),
            "extra param": await post(url, {**params, "ErrorCode": "30003"}, good),
            "signed for another URL": await post(url, params, elsewhere),
            "signed query string changed": await post(url + "?x=1", params, good),
        }
        unknown = {
            "no such provider": await post(
                f"{public_url}/v3/providers/999999999/callback", params, good
            ),
            "not a callback provider": await post(
                f"{public_url}/v3/providers/{plivo['id']}/callback", params, elsewhere
            ),
        }
        for what, response in refused.items():
            assert response.status_code == 403, (what, response.text)
            assert response.json()["status"] == "error", what
            assert response.json()["statusCode"] == 403, what
        for what, response in unknown.items():
            assert response.status_code == 404, (what, response.text)
            assert response.json()["status"] == "error", what
        [after] = await deliveries(api, creds, request_id)
        assert after == before
        # The genuine one goes through.
        assert (await post(url, params, good)).status_code == 204
    [delivered] = await deliveries(api, creds, request_id)
    assert delivered["status"] == "delivered"


async def test_opt_out_21610_skips_the_number_until_it_replies_start(
    api: httpx.AsyncClient,
    peer: SmsPeer,
    sms_worker: Callable[..., Worker],
    public_url: str,
    ca: trustme.CA,
) -> None:
    creds, [provider] = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    sms_worker()
    ann, bob = "+14155550104", "+14155550105"
    peer.script(ann, twilio_error(21610, "Attempt to send to unsubscribed recipient"))
    first = await send(api, creds, text_to(("ann", ann), ("bob", bob)))
    done = await until(api, creds, first, {"sent", "failed"}, count=2)
    by_user = {d["user"]: d for d in done}
    assert by_user["ann"]["status"] == "failed"
    assert by_user["ann"]["attempts"] == 1
    assert by_user["ann"]["lastError"].startswith("Twilio 21610: the recipient replied STOP")
    assert by_user["ann"]["lastError"].endswith("(number marked opted out of sms)")
    assert by_user["bob"]["status"] == "sent"

    second = await send(api, creds, text_to(("ann", ann), ("bob", bob)))
    done = await until(api, creds, second, {"sent", "skipped"}, count=2)
    by_user = {d["user"]: d for d in done}
    assert by_user["ann"]["status"] == "skipped"
    assert "opted out of sms" in by_user["ann"]["lastError"]
    assert by_user["bob"]["status"] == "sent"
    assert len(peer.twilio_to(ann)) == 1  # the refused first one only
    assert len(peer.twilio_to(bob)) == 2

    # The number texts START back: Twilio forwards it, signed, and the opt-out is lifted.
    url = f"{public_url}/v3/providers/{provider['id']}/callback"
    inbound = {
        "MessageSid": "SM" + "9" * 32,
        "SmsStatus": "received",
        "From": ann,
        "To": FROM,
        "Body": "Start",
        "AccountSid": SID,
    }
    signature = RequestValidator(TOKEN).compute_signature(url, inbound)
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    async with httpx.AsyncClient(verify=context, timeout=10) as client:
        answer = await client.post(url, data=inbound, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 204, answer.text
    third = await send(api, creds, text_to(("ann", ann)))
    await until(api, creds, third, {"sent"})
    assert len(peer.twilio_to(ann)) == 2


async def test_21211_fails_at_once_and_20429_and_5xx_are_retried(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    sms_worker()
    bad, busy, down = "+14155550106", "+14155550107", "+14155550108"
    peer.script(bad, twilio_error(21211, "The 'To' number is not a valid phone number."))
    peer.script(busy, twilio_error(20429, "Too Many Requests", 429))
    peer.script(down, (503, {"code": 20500, "message": "Internal Server Error"}))
    request_id = await send(api, creds, text_to(("a", bad), ("b", busy), ("c", down)))
    done = await until(api, creds, request_id, {"sent", "failed"}, count=3)
    by_user = {d["user"]: d for d in done}
    assert (by_user["a"]["status"], by_user["a"]["attempts"]) == ("failed", 1)
    assert by_user["a"]["lastError"].startswith(
        "Twilio 21211: the 'To' number is not a valid phone"
    )
    assert len(peer.twilio_to(bad)) == 1
    for user, number in (("b", busy), ("c", down)):
        assert (by_user[user]["status"], by_user[user]["attempts"]) == ("sent", 2), user
        assert [m.status for m in peer.twilio_to(number)] == [
            429 if user == "b" else 503,
            201,
        ]
    assert by_user["b"]["log"][0]["error"].startswith("Twilio 20429")


async def test_a_wrong_auth_token_fails_over_to_the_next_provider(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(
        api,
        "sms",
        ("twilio_sms", {**TWILIO, "TWILIO_AUTH_TOKEN": "wrong-token"}),
        ("plivo_sms", {"AUTH_ID": PLIVO_ID, "AUTH_TOKEN": PLIVO_TOKEN, "SENDER": "HERALD"}),
    )
    sms_worker()
    number = "+14155550109"
    request_id = await send(api, creds, text_to(("ann", number)))
    [delivery] = await until(api, creds, request_id, {"sent", "failed"})
    assert delivery["status"] == "sent", delivery
    assert delivery["provider"] == "plivo_sms"
    assert [(e["provider"], e["outcome"]) for e in delivery["log"]] == [
        ("twilio_sms", "config"),
        ("plivo_sms", "sent"),
    ]
    assert delivery["log"][0]["error"].startswith("Twilio 20003: authentication failed")
    [plivo] = [m for m in peer.messages if m.provider == "plivo" and m.fields["dst"] == number]
    assert plivo.fields == {"src": "HERALD", "dst": number, "text": "Your code\n123456"}
    assert delivery["providerMessageId"] == plivo.sid


# -- the SMS-after-timeout policy ----------------------------------------------------------


async def test_an_sms_without_an_answer_is_unknown_and_never_resent(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    sms_worker(delivery_http_timeout=1)
    silent, sentinel = "+14155550110", "+14155550111"
    release = peer.hold(silent)
    try:
        request_id = await send(api, creds, text_to(("ann", silent)))
        [delivery] = await until(api, creds, request_id, {"unknown", "sent", "failed"})
        assert delivery["status"] == "unknown", delivery
        assert delivery["attempts"] == 1
        assert "not resent" in delivery["lastError"]
        assert [e["outcome"] for e in delivery["log"]] == ["unknown"]
    finally:
        release.set()
    # A later send through the same worker is the sentinel: by the time it arrives, a
    # retry of the first would have had its chance.
    later = await send(api, creds, text_to(("bob", sentinel)))
    await until(api, creds, later, {"sent"})
    assert len(peer.twilio_to(silent)) == 1
    [still] = await deliveries(api, creds, request_id)
    assert still["status"] == "unknown"


async def test_a_refused_connection_is_retried(
    api: httpx.AsyncClient,
    ca: trustme.CA,
    sms_worker: Callable[..., Worker],
) -> None:
    creds, _ = await sms_app(api, "sms", ("twilio_sms", TWILIO))
    port = free_port()  # nothing listens here yet
    sms_worker(twilio_base_url=f"https://127.0.0.1:{port}/twilio")
    number = "+14155550112"
    request_id = await send(api, creds, text_to(("ann", number)))

    async def refused() -> bool | None:
        [d] = await deliveries(api, creds, request_id)
        return True if d["log"] and d["log"][0]["outcome"] == "unreachable" else None

    await wait_for(refused, within=20, what="a refused first attempt")
    late = SmsPeer(ca, port=port).start()
    try:
        [delivery] = await until(api, creds, request_id, {"sent"})
        assert delivery["attempts"] >= 2
        assert len(late.twilio_to(number)) == 1
    finally:
        late.stop()


# -- WhatsApp ------------------------------------------------------------------------------


async def test_a_whatsapp_template_goes_with_content_sid_and_is_read(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(api, "whatsapp", ("twilio_whatsapp", TWILIO))
    sms_worker()
    number = "+14155550113"
    template = "HX" + "a" * 32
    request_id = await send(
        api,
        creds,
        text_to(
            ("ann", number),
            override={
                "twilio_whatsapp": {"ContentSid": template, "ContentVariables": {"1": "12:30"}}
            },
        ),
    )
    [delivery] = await until(api, creds, request_id, {"sent"})
    message = one(peer.twilio_to(number))
    assert message.fields["To"] == f"whatsapp:{number}"
    assert message.fields["From"] == f"whatsapp:{FROM}"
    assert message.fields["ContentSid"] == template
    assert message.fields["ContentVariables"] == '{"1":"12:30"}'
    assert "Body" not in message.fields
    # WhatsApp's `read` may overtake `delivered`.
    assert await called(peer.callback(message, ["read", "delivered"])) == [204] * 2
    [delivery] = await until(api, creds, request_id, {"read"})
    assert [e["outcome"] for e in delivery["log"]] == [
        "sent",
        "callback: read",
        "callback: delivered (kept read)",
    ]


async def test_a_channel_override_template_and_free_text_outside_the_window(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(api, "whatsapp", ("twilio_whatsapp", TWILIO))
    sms_worker()
    templated, free = "+14155550114", "+14155550115"
    peer.script(free, twilio_error(63016, "Failed to send freeform message outside the window"))
    override = {
        "channel": {"whatsapp": {"contentSid": "HX" + "b" * 32, "contentVariables": '{"1":"x"}'}}
    }
    first = await send(api, creds, text_to(("ann", templated), override=override))
    second = await send(api, creds, text_to(("bob", free)))
    await until(api, creds, first, {"sent"})
    [failed] = await until(api, creds, second, {"failed"})
    message = one(peer.twilio_to(templated))
    assert (message.fields["ContentSid"], message.fields["ContentVariables"]) == (
        "HX" + "b" * 32,
        '{"1":"x"}',
    )
    assert failed["attempts"] == 1
    assert "outside the 24-hour customer-service window" in failed["lastError"]
    assert failed["lastError"].startswith("Twilio 63016")

    bad = await api.post(
        "/v3/notifications",
        json=text_to(("ann", templated), override={"channel": {"whatsapp": {"contentSid": 7}}}),
        headers=creds.backend(),
    )
    assert bad.status_code == 400
    assert "override.channel.whatsapp.contentSid" in bad.text


# -- Textlocal -----------------------------------------------------------------------------


async def test_textlocal_sends_the_number_without_plus_and_a_bad_key_is_config(
    api: httpx.AsyncClient, peer: SmsPeer, sms_worker: Callable[..., Worker]
) -> None:
    creds, _ = await sms_app(
        api, "sms", ("textlocal_sms", {"API_KEY": TEXTLOCAL_KEY, "SENDER": "HERALD"})
    )
    wrong, _ = await sms_app(api, "sms", ("textlocal_sms", {"API_KEY": "nope", "SENDER": "HERALD"}))
    sms_worker()
    number = "+919988776655"
    request_id = await send(api, creds, text_to(("ann", number)))
    refused = await send(api, wrong, text_to(("ann", number)))
    [delivery] = await until(api, creds, request_id, {"sent"})
    [failed] = await until(api, wrong, refused, {"failed"})
    [message] = [m for m in peer.messages if m.provider == "textlocal"]
    assert message.fields == {
        "apikey": TEXTLOCAL_KEY,
        "numbers": "919988776655",
        "sender": "HERALD",
        "message": "Your code\n123456",
    }
    assert delivery["providerMessageId"] == message.sid
    assert failed["lastError"].startswith("Textlocal 3: Invalid login details")
    assert [e["outcome"] for e in failed["log"]] == ["config"]


async def test_twilio_config_needs_a_sender(api: httpx.AsyncClient) -> None:
    creds = await new_app(api, ["inApp", "sms"])
    response = await api.post(
        f"/admin/apps/{creds.id}/channels/sms/providers",
        json={
            "provider": "twilio_sms",
            "config": {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN},
        },
        headers=ADMIN,
    )
    assert response.status_code == 400
    assert "TWILIO_FROM_NUMBER or MESSAGING_SERVICE_SID" in response.text
    service = await api.post(
        f"/admin/apps/{creds.id}/channels/sms/providers",
        json={
            "provider": "twilio_sms",
            "config": {**TWILIO, "TWILIO_FROM_NUMBER": None, "MESSAGING_SERVICE_SID": "MG1"},
        },
        headers=ADMIN,
    )
    assert service.status_code == 201, service.text
