"""Non-ASCII user ids in headers name the same user as in a JSON body.

Clients differ: curl, Go and httpx (given bytes) send `用户` as UTF-8; Node's http and fetch
send `café` as one latin-1 byte (0xE9) and refuse `用户` outright, so @engagespot/core reaches
`用户` with a user token only. Herald reads UTF-8 when the bytes are UTF-8, else latin-1."""

import base64
import contextlib
import hashlib
import hmac

import httpx
import pytest
from engagespot import Engagespot

from tests.factories import Creds, send_body
from tests.realtime.client import connected
from tests.sdk import node
from tests.sdk.node import Js

NAMES = ["café", "用户"]


def user_headers(creds: Creds, raw_id: bytes, *, signed: str | None = None) -> dict[bytes, bytes]:
    """Inbox headers with the user id's bytes as given; `signed`: the id to sign (HMAC)."""
    headers = {b"X-ENGAGESPOT-API-KEY": creds.api_key.encode(), b"X-ENGAGESPOT-USER-ID": raw_id}
    if signed is not None:
        # The signature is over the identifier's UTF-8 bytes, whatever the header carried.
        digest = hmac.new(creds.api_secret.encode(), signed.encode(), hashlib.sha256).digest()
        headers[b"X-ENGAGESPOT-USER-SIGNATURE"] = base64.b64encode(digest)
    return headers


def spellings(name: str) -> list[bytes]:
    """The bytes clients send for `name`: UTF-8, and latin-1 where it can be."""
    out = [name.encode("utf-8")]
    with contextlib.suppress(UnicodeEncodeError):
        out.append(name.encode("latin-1"))
    return out


def titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [n["title"] for n in response.json()["data"]]


@pytest.mark.parametrize("name", NAMES)
async def test_header_ids_read_the_inbox_of_the_body_id(
    client: httpx.AsyncClient, creds: Creds, name: str
) -> None:
    sent = await client.post(
        "/v3/notifications", json=send_body(name, title=f"to {name}"), headers=creds.backend()
    )
    assert sent.status_code == 202, sent.text
    await client.post("/v3/notifications", json=send_body("cafe"), headers=creds.backend())
    for raw in spellings(name):
        r = await client.get("/v3/notifications", headers=user_headers(creds, raw))
        assert titles(r) == [f"to {name}"], raw


@pytest.mark.parametrize("name", NAMES)
async def test_hmac_over_non_ascii_ids(
    client: httpx.AsyncClient, creds: Creds, admin: dict[str, str], name: str
) -> None:
    r = await client.patch(f"/admin/apps/{creds.id}", json={"hmacEnabled": True}, headers=admin)
    assert r.status_code == 200, r.text
    await client.post(
        "/v3/notifications", json=send_body(name, title="signed"), headers=creds.backend()
    )
    for raw in spellings(name):
        r = await client.get("/v3/notifications", headers=user_headers(creds, raw, signed=name))
        assert titles(r) == ["signed"], raw
        unsigned = await client.get("/v3/notifications", headers=user_headers(creds, raw))
        assert unsigned.status_code == 401


async def test_bytes_that_are_not_utf8_read_as_latin1(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    # 0xC3 alone is not UTF-8: "Ã", as latin-1 says.
    await client.post(
        "/v3/notifications", json=send_body("Ã", title="latin"), headers=creds.backend()
    )
    r = await client.get("/v3/notifications", headers=user_headers(creds, b"\xc3"))
    assert titles(r) == ["latin"]


@pytest.mark.node
@pytest.mark.live
def test_sdks_reach_non_ascii_inboxes(live_server: str, live_app: Creds) -> None:
    js: Js = node.prepare()
    sdk = Engagespot(
        base_url=f"{live_server}/v3",
        api_key=live_app.api_key,
        api_secret=live_app.api_secret,
        data_region=None,
    )
    for name in NAMES:
        sent = sdk.send({"notification": {"title": f"to {name}"}, "sendTo": {"recipients": [name]}})
        assert sent["success"] is True, sent
    # Raw HTTP through the real server: the header's bytes as each kind of client sends them.
    for name in NAMES:
        for raw in spellings(name):
            r = httpx.get(f"{live_server}/v3/notifications", headers=user_headers(live_app, raw))
            assert titles(r) == [f"to {name}"], raw
    first = httpx.get(
        f"{live_server}/v3/notifications",
        params={"userIdentifier": "café"},
        headers=live_app.backend(),
    ).json()["data"][0]["id"]

    # @engagespot/core with userId "café": Node's fetch sends it as latin-1.
    cafe = js.run(
        "core_probe",
        node.config(live_server, live_app, HERALD_USER_ID="café", HERALD_PROBE_ID=str(first)),
    )
    assert cafe["connect"]["status"] == 200, cafe["connect"]
    assert [n["title"] for n in cafe["list"]["data"]["data"]] == ["to café"]
    assert cafe["markAsRead"]["status"] == 200

    # `用户` cannot travel in a fetch header: core reaches it with a token from @engagespot/node.
    key = node.signing_key(live_server, live_app)
    tokens = js.run(
        "node_tokens",
        node.config(live_server, live_app, HERALD_SIGNING_KEY=key, HERALD_TOKEN_USERS="用户"),
    )["tokens"]
    user = js.run(
        "core_probe",
        node.config(
            live_server,
            live_app,
            HERALD_USER_ID="用户",
            HERALD_USER_TOKEN=tokens["用户"],
            HERALD_PROBE_ID=str(first),
        ),
    )
    assert [n["title"] for n in user["list"]["data"]["data"]] == ["to 用户"]
    assert user["getById"]["status"] == 404  # café's notification is not 用户's


@pytest.mark.live
async def test_realtime_with_a_non_ascii_user_id(live_server: str, live_app: Creds) -> None:
    # socket.io-client percent-encodes its query as UTF-8; parse_qs decodes it as UTF-8.
    async with connected(live_server, api_key=live_app.api_key, user_id="用户") as events:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{live_server}/v3/notifications",
                json=send_body("用户", title="live"),
                headers=live_app.backend(),
            )
            assert r.status_code == 202, r.text
        event = await events.wait_for("NEW_NOTIFICATION")
        assert event["notification"]["title"] == "live"
