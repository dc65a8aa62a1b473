"""Expo against an Expo-shaped server on loopback over TLS: batches of at most 100 messages,
a ticket per delivery, receipts fetched by the delayed job (DeviceNotRegistered removes the
token with the receipt), Retry-After on the batch, a batch split by project."""

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.worker import Worker
from tests.delivery.conftest import ADMIN, send, settled
from tests.delivery.push_peers import ExpoPeer, by_target, profile, push_app
from tests.factories import Creds
from tests.queue.support import wait_for

ACCESS_TOKEN = "expo-access-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def expo_peer(ca: trustme.CA) -> Iterator[ExpoPeer]:
    peer = ExpoPeer(ca).start()
    yield peer
    peer.stop()


@pytest.fixture
def expo_worker(worker: Callable[..., Worker], expo_peer: ExpoPeer) -> Callable[..., Worker]:
    def start(**overrides: Any) -> Worker:
        return worker(expo_base_url=expo_peer.url(), expo_receipt_delay=0.3, **overrides)

    return start


def expo_token() -> str:
    return f"ExponentPushToken[{secrets.token_urlsafe(16)}]"


def inline(identifier: str, *tokens: str) -> dict[str, Any]:
    return {"identifier": identifier, "expo": {"tokens": list(tokens)}}


async def all_deliveries(
    api: httpx.AsyncClient, creds: Creds, request_id: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        query = f"?after={after}" if after else ""
        response = await api.get(
            f"/admin/apps/{creds.id}/requests/{request_id}/deliveries{query}", headers=ADMIN
        )
        assert response.status_code == 200, response.text
        page: list[dict[str, Any]] = response.json()
        out += page
        if len(page) < 100:
            return out
        after = page[-1]["id"]


def receipts_of(delivery: dict[str, Any]) -> list[str]:
    """The delivery's receipts: "ok", or the error Expo reported."""
    return [e["error"] or "ok" for e in delivery["log"] if e["outcome"] == "receipt"]


async def test_batches_of_100_tickets_and_receipts_each_on_its_own_delivery(
    api: httpx.AsyncClient, expo_peer: ExpoPeer, expo_worker: Callable[..., Worker]
) -> None:
    creds, provider = await push_app(api, "expo", {"ACCESS_TOKEN": ACCESS_TOKEN})
    assert provider["config"] == {"ACCESS_TOKEN": "********"}
    users = {f"u{i}": expo_token() for i in range(150)}
    gone_now, gone_later, too_big, throttled = (users[f"u{i}"] for i in range(4))
    expo_peer.ticket_errors[gone_now] = "DeviceNotRegistered"
    expo_peer.receipt_errors.update(
        {
            gone_later: ["DeviceNotRegistered"],
            too_big: ["MessageTooBig"],
            throttled: ["MessageRateExceeded"],
        }
    )
    # The first receipts request meets a 503: asked again later, nothing removed meanwhile.
    expo_peer.receipt_script.append((503, {}, '{"errors":[{"code":"INTERNAL_SERVER_ERROR"}]}'))
    batches_before = len(expo_peer.batches)
    expo_worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "Sale", "message": "Today only", "url": "https://s/1"},
            "sendTo": {"recipients": [inline(u, t) for u, t in users.items()]},
            "data": {"sale": 1},
        },
    )

    async def all_receipts() -> dict[str, dict[str, Any]] | None:
        found = by_target(await all_deliveries(api, creds, request_id))
        done = (
            len(found) == 150
            and found[gone_later]["status"] == "undelivered"
            and found[too_big]["status"] == "undelivered"
            and receipts_of(found[throttled])[-1:] == ["ok"]
            and all(
                receipts_of(d) for t, d in found.items() if t not in (gone_now, gone_later, too_big)
            )
        )
        return found if done else None

    found = await wait_for(all_receipts, within=30, what="every receipt recorded")
    batches = expo_peer.batches[batches_before:]
    # 150 deliveries in two requests of at most 100; the throttled one sent again alone.
    assert sorted(len(b) for b in batches[:2]) == [50, 100]
    assert [[m["to"] for m in b] for b in batches[2:]] == [[throttled]]
    assert set(expo_peer.auth[-3:]) == {f"Bearer {ACCESS_TOKEN}"}
    assert expo_peer.messages_to(users["u9"]) == [
        {
            "to": users["u9"],
            "title": "Sale",
            "body": "Today only",
            "data": {"sale": 1, "url": "https://s/1"},
        }
    ]
    ok = found[users["u9"]]
    assert (ok["status"], receipts_of(ok)) == ("sent", ["ok"])
    assert ok["providerMessageId"] in expo_peer.tickets
    assert found[gone_now]["status"] == "failed"
    assert found[gone_now]["lastError"].endswith("(token removed from `expo.tokens`)")
    assert [r.split(":")[:2] for r in receipts_of(found[gone_later])] == [
        ["receipt", " DeviceNotRegistered"]
    ]
    assert found[gone_later]["lastError"].startswith("receipt: DeviceNotRegistered")
    assert found[gone_later]["lastError"].endswith("(token removed from `expo.tokens`)")
    assert found[too_big]["lastError"].startswith("receipt: MessageTooBig")
    assert (found[throttled]["status"], found[throttled]["attempts"]) == ("sent", 2)
    assert [r[:30] for r in receipts_of(found[throttled])] == [
        "receipt: MessageRateExceeded: ",
        "ok",
    ]
    assert len(expo_peer.receipt_requests) >= 3  # the 503, then the two batches' and the resend's
    for user, token in (("u0", None), ("u1", None), ("u2", too_big), ("u3", throttled)):
        assert await profile(api, creds, user) == {"expo": {"tokens": [token] if token else []}}

    # The next send reaches the live tokens only.
    second = await send(
        api,
        creds,
        {"notification": {"title": "Again"}, "sendTo": {"recipients": ["u0", "u1", "u2", "u4"]}},
    )
    again = await settled(api, creds, second, count=4)
    by_user = {d["user"]: d for d in again}
    assert {u: d["status"] for u, d in by_user.items()} == {
        "u0": "skipped",
        "u1": "skipped",
        "u2": "sent",
        "u4": "sent",
    }
    assert [m["to"] for m in expo_peer.batches[-1]] in (
        [too_big, users["u4"]],
        [users["u4"], too_big],
    )


async def test_a_429_on_the_batch_is_waited_out_and_the_batch_stays_one_request(
    api: httpx.AsyncClient, expo_peer: ExpoPeer, expo_worker: Callable[..., Worker]
) -> None:
    creds, _ = await push_app(api, "expo", {})
    users = {f"r{i}": expo_token() for i in range(5)}
    expo_peer.send_script.append(
        (429, {"Retry-After": "1"}, '{"errors":[{"code":"TOO_MANY_REQUESTS","message":"slow"}]}')
    )
    before = len(expo_peer.batches)
    expo_worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "R"},
            "sendTo": {"recipients": [inline(u, t) for u, t in users.items()]},
        },
    )
    found = await settled(api, creds, request_id, count=5)
    assert {(d["status"], d["attempts"]) for d in found} == {("sent", 2)}
    assert [len(b) for b in expo_peer.batches[before:]] == [5, 5]
    first, second = expo_peer.send_at[before:]
    assert second - first >= 1.0
    assert expo_peer.auth[-1] == ""  # no ACCESS_TOKEN: no Authorization header


async def test_a_batch_mixing_expo_projects_is_sent_project_by_project(
    api: httpx.AsyncClient, expo_peer: ExpoPeer, expo_worker: Callable[..., Worker]
) -> None:
    creds, _ = await push_app(api, "expo", {})
    ours, theirs = expo_token(), expo_token()
    expo_peer.projects[theirs] = "@someone/else"
    before = len(expo_peer.batches)
    expo_worker()
    request_id = await send(
        api,
        creds,
        {
            "notification": {"title": "P"},
            "sendTo": {"recipients": [inline("p1", ours), inline("p2", theirs)]},
        },
    )
    found = await settled(api, creds, request_id, count=2)
    assert {(d["status"], d["attempts"]) for d in found} == {("sent", 1)}
    sent = [sorted(m["to"] for m in b) for b in expo_peer.batches[before:]]
    assert sent[0] == sorted([ours, theirs])  # refused with Expo's per-project split
    assert sorted(sent[1:]) == sorted([[ours], [theirs]])


async def test_a_batch_without_an_answer_is_unknown_and_never_sent_twice(
    api: httpx.AsyncClient,
    expo_peer: ExpoPeer,
    expo_worker: Callable[..., Worker],
    channel_engine: AsyncEngine,
) -> None:
    creds, _ = await push_app(api, "expo", {})
    users = {f"h{i}": expo_token() for i in range(3)}
    before = len(expo_peer.batches)
    expo_peer.hold = 3.0
    try:
        expo_worker(delivery_http_timeout=1.5)
        request_id = await send(
            api,
            creds,
            {
                "notification": {"title": "H"},
                "sendTo": {"recipients": [inline(u, t) for u, t in users.items()]},
            },
        )

        async def in_flight() -> list[tuple[str, str | None]] | None:
            if len(expo_peer.batches) == before:
                return None
            async with channel_engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT status, phase FROM deliveries WHERE request_id = :r"),
                    {"r": request_id},
                )
                return [(str(s), p) for s, p in rows]

        # While the request is out, every delivery of the batch is marked handed over: a
        # worker dying now leaves them `unknown` (engine._recover), not sent again.
        assert (
            await wait_for(in_flight, within=10, what="the batch at Expo")
            == [("sending", "data")] * 3
        )
        found = await settled(api, creds, request_id, count=3)
    finally:
        expo_peer.hold = 0.0
    # Marked handed over right before the request: a timeout may have delivered them.
    assert {(d["status"], d["attempts"]) for d in found} == {("unknown", 1)}
    assert {d["log"][-1]["outcome"] for d in found} == {"unknown"}
    assert [len(b) for b in expo_peer.batches[before:]] == [3]
