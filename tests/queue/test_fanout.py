"""The worker's fan-out on a live `herald serve`: each recipient once, topics of any size,
scheduled sends, cancellation, idempotent retries, and a poisoned job parked as failed."""

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.kit.timefmt import utcnow
from app.queue.enqueue import enqueue
from app.sends.accept import FAN_OUT
from app.sends.models import NotificationRequest
from app.sends.tasks import MAX_ATTEMPTS
from app.users import repository as users_repository
from tests.factories import Creds
from tests.queue.support import (
    ADMIN,
    deliveries,
    request_status,
    rows,
    scalar,
    send,
    topic_reach,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.live


@pytest.fixture
async def api(live_server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server (the `client` fixture is the in-process app)."""
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as c:
        yield c


async def _topic(
    api: httpx.AsyncClient, creds: Creds, identifier: str, users: list[dict[str, Any]]
) -> int:
    created = await api.post(
        "/v3/topics", json={"name": identifier, "identifier": identifier}, headers=creds.backend()
    )
    assert created.status_code == 201, created.text
    topic_id: int = created.json()["id"]
    for start in range(0, len(users), 10_000):
        subscribed = await api.post(
            f"/v3/topics/{topic_id}/users",
            json={"users": users[start : start + 10_000]},
            headers=creds.backend(),
        )
        assert subscribed.status_code == 200, subscribed.text
    return topic_id


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def _job_finished(live_engine: AsyncEngine, request_id: str) -> bool | None:
    """True once the send's job ran to completion (PgQueuer then deletes it), else None."""
    left = await scalar(
        live_engine,
        "SELECT count(*) FROM pgqueuer "
        "WHERE convert_from(payload, 'UTF8')::jsonb->>'requestId' = :rid",
        rid=request_id,
    )
    return True if int(left) == 0 else None


# -- a poisoned job, planted first so its ~15 s of backoff overlaps the other tests -------------


@dataclass(frozen=True)
class Poisoned:
    app_id: int
    request_id: str
    planted: float


@pytest.fixture(scope="module", autouse=True)
async def poisoned(live_server: str, live_engine: AsyncEngine) -> Poisoned:
    """A queued send whose stored payload this version cannot read (as if written by an older
    Herald), with its job, inserted in one transaction the way `send.accept` writes them."""
    async with httpx.AsyncClient(base_url=live_server) as c:
        created = await c.post("/admin/apps", json={"name": "poisoned"}, headers=ADMIN)
        assert created.status_code == 201, created.text
        app_id: int = created.json()["id"]
    request_id = uuid.uuid4()
    async with AsyncSession(live_engine) as session, session.begin():
        users = await users_repository.ensure(session, app_id, ["victim"])
        now = utcnow()
        session.add(
            NotificationRequest(
                id=request_id,
                app_id=app_id,
                payload={"notification": "Hello", "sendTo": {"recipients": ["victim"]}},
                recipient_count=1,
                status="queued",
                user_ids=[users["victim"]],
                topic_ids=[],
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        await enqueue(session, FAN_OUT, {"requestId": str(request_id)})
    return Poisoned(app_id, str(request_id), time.monotonic())


# -- each recipient once ------------------------------------------------------------------------


async def test_duplicate_recipients_get_exactly_one_notification(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    h = live_app.backend()
    await _topic(
        api,
        live_app,
        "first",
        [
            {"identifier": "alice"},
            {"identifier": "bob", "channels": ["inApp"]},
            {"identifier": "erin", "channels": ["email"]},
        ],
    )
    await _topic(
        api,
        live_app,
        "second",
        [
            {"identifier": "bob", "channels": ["email", "inApp"]},
            {"identifier": "carol"},
            {"identifier": "erin", "channels": []},
        ],
    )
    # frank asked for this topic on e-mail only: no inbox row for him.
    await _topic(api, live_app, "mail-only", [{"identifier": "frank", "channels": ["email"]}])

    request_id = await send(
        api,
        h,
        {
            "notification": {"title": "Once each"},
            "sendTo": {
                "recipients": ["alice", "alice", {"identifier": "dave", "plan": "pro"}, "dave"],
                "topics": ["first", "second", "first", "mail-only"],
            },
        },
    )
    # Listed recipients are written in the 202's own transaction, before any worker runs.
    early = await deliveries(live_engine, request_id)
    assert early.get("alice") == 1
    assert early.get("dave") == 1

    status = await wait_status(api, live_app.id, request_id, "done", within=20)
    everyone = {"alice": 1, "bob": 1, "carol": 1, "dave": 1, "erin": 1}
    assert await deliveries(live_engine, request_id) == everyone
    assert status["delivered"] == 5
    assert status["recipients"] == 2
    assert status["error"] is None
    for user in everyone:
        inbox = await api.get("/v3/notifications", headers=live_app.user(user))
        assert [n["title"] for n in inbox.json()["data"]] == ["Once each"], user
    frank = await api.get("/v3/notifications", headers=live_app.user("frank"))
    assert frank.json()["data"] == []


async def test_a_10000_subscriber_topic_reaches_everyone_once(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    topic_id = await _topic(
        api, live_app, "everyone", [{"identifier": f"user-{i:05d}"} for i in range(10_000)]
    )
    started = time.monotonic()
    request_id = await send(
        api,
        live_app.backend(),
        {"notification": {"title": "Big news"}, "sendTo": {"topics": ["everyone"]}},
    )
    status = await wait_status(api, live_app.id, request_id, "done", within=60)
    elapsed = time.monotonic() - started

    assert status["delivered"] == 10_000
    assert status["topics"] == [topic_id]
    total, distinct, missing = await topic_reach(live_engine, request_id, topic_id)
    assert (total, distinct, missing) == (10_000, 10_000, 0)
    # Every row is in this app and carries the content; the cursor ended on the last user.
    [(apps, titles, cursor, last)] = await rows(
        live_engine,
        """
        SELECT array_agg(DISTINCT n.app_id), array_agg(DISTINCT n.title), r.cursor,
               (SELECT max(user_id) FROM topic_subscriptions WHERE topic_id = :topic)
        FROM notifications n JOIN notification_requests r ON r.id = n.request_id
        WHERE n.request_id = CAST(:rid AS uuid) GROUP BY r.cursor
        """,
        rid=request_id,
        topic=topic_id,
    )
    assert (apps, titles, cursor) == ([live_app.id], ["Big news"], last)
    print(f"\nfan-out of 10,000 subscribers: {elapsed:.2f}s from POST to done")


async def test_up_to_1000_listed_recipients_are_written_at_once_more_by_the_worker(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    h = live_app.backend()
    inline = [f"in-{i:04d}" for i in range(1_000)]
    request_id = await send(
        api, h, {"notification": {"title": "Now"}, "sendTo": {"recipients": inline}}
    )
    # HERALD_INLINE_RECIPIENTS (1000): written in the 202's transaction, nothing queued.
    status = await request_status(api, live_app.id, request_id)
    assert (status["status"], status["delivered"], status["recipients"]) == ("done", 1000, 1000)

    # One more and the whole audience goes to the worker (listed twice still counts once).
    deferred = [f"out-{i:04d}" for i in range(1_001)]
    request_id = await send(
        api,
        h,
        {"notification": {"title": "Soon"}, "sendTo": {"recipients": deferred + deferred[:50]}},
    )
    queued = await scalar(
        live_engine,
        "SELECT cardinality(user_ids) FROM notification_requests WHERE id = CAST(:rid AS uuid)",
        rid=request_id,
    )
    assert queued == 1_001
    done = await wait_status(api, live_app.id, request_id, "done", within=20)
    assert (done["delivered"], done["recipients"]) == (1_001, 1_001)
    counts = await deliveries(live_engine, request_id)
    assert (len(counts), set(counts.values())) == (1_001, {1})

    # HERALD_MAX_RECIPIENTS (10000) is the most one send takes.
    too_many = [f"x-{i}" for i in range(10_001)]
    refused = await api.post(
        "/v3/notifications",
        json={"notification": {"title": "No"}, "sendTo": {"recipients": too_many}},
        headers=h,
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == ["at most 10000 recipients per request"]


# -- scheduled sends and cancellation -----------------------------------------------------------


async def test_a_scheduled_send_arrives_after_send_at_and_not_before(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    await _topic(api, live_app, "launch", [{"identifier": "alice"}, {"identifier": "bob"}])
    send_at = _in(2)
    request_id = await send(
        api,
        live_app.backend(),
        {
            "notification": {"title": "Later"},
            "sendTo": {"recipients": ["alice", "carol"], "topics": ["launch"]},
            "sendAt": send_at.isoformat(),
        },
    )
    status = await request_status(api, live_app.id, request_id)
    assert status["status"] == "scheduled"
    assert status["sendAt"] == send_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # Watch the inbox from now until the rows show up.
    checks_before = 0

    async def arrived() -> datetime | None:
        nonlocal checks_before
        inbox = await api.get("/v3/notifications", headers=live_app.user("carol"))
        seen_at = datetime.now(UTC)
        if inbox.json()["data"]:
            return seen_at
        if seen_at < send_at:
            checks_before += 1
        return None

    first_seen = await wait_for(arrived, within=15, what="the scheduled notification")
    assert checks_before > 0
    assert first_seen >= send_at
    done = await wait_status(api, live_app.id, request_id, "done", within=10)
    assert done["delivered"] == 3
    assert await deliveries(live_engine, request_id) == {"alice": 1, "bob": 1, "carol": 1}
    written = await scalar(
        live_engine,
        "SELECT min(created_at) FROM notifications WHERE request_id = CAST(:rid AS uuid)",
        rid=request_id,
    )
    assert written >= send_at


async def test_cancelling_a_scheduled_send_delivers_nothing(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    await _topic(api, live_app, "launch", [{"identifier": "alice"}])
    body = {
        "notification": {
            "title": "Cancelled",
            "workflow": {"identifier": "reminder", "cancellationKey": "order-42"},
        },
        "sendTo": {"recipients": ["bob"], "topics": ["launch"]},
        "sendAt": _in(1.5).isoformat(),
    }
    request_id = await send(api, live_app.backend(), body)
    # Another key, and another app with the same key, are left alone.
    other_key = await send(
        api,
        live_app.backend(),
        {**body, "notification": {"title": "Kept", "workflow": {"cancellationKey": "order-43"}}},
    )

    cancelled = await api.patch(
        "/v4/workflows/reminder/cancel-run",
        json={"cancellationKey": "order-42"},
        headers=live_app.backend(),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"message": "1 runs cancelled", "cancelled": 1}
    assert (await request_status(api, live_app.id, request_id))["status"] == "cancelled"

    await wait_for(
        lambda: _job_finished(live_engine, request_id), within=15, what="the cancelled job to run"
    )
    status = await request_status(api, live_app.id, request_id)
    assert (status["status"], status["delivered"]) == ("cancelled", 0)
    assert await deliveries(live_engine, request_id) == {}
    kept = await wait_status(api, live_app.id, other_key, "done", within=10)
    assert kept["delivered"] == 2


async def test_cancel_for_recipients_skips_only_them(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    await _topic(
        api,
        live_app,
        "launch",
        [{"identifier": "alice"}, {"identifier": "bob"}, {"identifier": "carol"}],
    )
    request_id = await send(
        api,
        live_app.backend(),
        {
            "notification": {
                "title": "Partly cancelled",
                "workflow": {"identifier": "reminder", "cancellationKey": "cart-7"},
            },
            "sendTo": {"recipients": ["dave", "erin"], "topics": ["launch"]},
            "sendAt": _in(1.5).isoformat(),
        },
    )
    cancelled = await api.post(
        "/v4/workflows/reminder/cancel-run",
        json={"cancellationKey": "cart-7", "cancelFor": {"recipients": ["bob", "dave", "zoe"]}},
        headers=live_app.backend(),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled"] == 1
    assert (await request_status(api, live_app.id, request_id))["status"] == "scheduled"

    done = await wait_status(api, live_app.id, request_id, "done", within=15)
    assert await deliveries(live_engine, request_id) == {"alice": 1, "carol": 1, "erin": 1}
    assert done["delivered"] == 3


# -- Idempotency-Key ----------------------------------------------------------------------------


async def test_concurrent_retries_with_one_key_send_once(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine, other_live_app: Creds
) -> None:
    body = {"notification": {"title": "Charged"}, "sendTo": {"recipients": ["alice"]}}
    headers = {**live_app.backend(), "Idempotency-Key": "payment-1"}
    responses = await asyncio.gather(
        *(api.post("/v3/notifications", json=body, headers=headers) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses]
    ids = {r.json()["requestId"] for r in responses}
    assert len(ids) == 1
    [request_id] = ids
    assert await rows(
        live_engine,
        "SELECT CAST(id AS text) FROM notification_requests WHERE app_id = :app",
        app=live_app.id,
    ) == [(request_id,)]
    assert await deliveries(live_engine, request_id) == {"alice": 1}

    # A later retry gets the same answer; the key with another body is refused.
    again = await api.post("/v3/notifications", json=body, headers=headers)
    assert (again.status_code, again.json()) == (202, {"requestId": request_id})
    changed = {**body, "notification": {"title": "Charged twice"}}
    refused = await api.post("/v3/notifications", json=changed, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"] == (
        "Idempotency-Key was already used with a different request body"
    )
    # Keys belong to an app: another app's identical key is another send.
    theirs = await api.post(
        "/v3/notifications",
        json=body,
        headers={**other_live_app.backend(), "Idempotency-Key": "payment-1"},
    )
    assert theirs.status_code == 202
    assert theirs.json()["requestId"] != request_id
    assert (
        await scalar(
            live_engine,
            "SELECT count(*) FROM notification_requests WHERE app_id = :app",
            app=live_app.id,
        )
        == 1
    )


async def test_a_key_held_by_a_send_in_flight_waits_then_answers_409(
    api: httpx.AsyncClient, live_app: Creds, live_engine: AsyncEngine
) -> None:
    body = {"notification": {"title": "Slow"}, "sendTo": {"recipients": ["alice"]}}
    headers = {**live_app.backend(), "Idempotency-Key": "slow-1"}
    # A first attempt that has claimed the key and not committed yet.
    async with live_engine.connect() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (app_id, key, fingerprint) "
                "VALUES (:app, 'slow-1', 'in-flight')"
            ),
            {"app": live_app.id},
        )
        started = time.monotonic()
        busy = await api.post("/v3/notifications", json=body, headers=headers)
        waited = time.monotonic() - started
        assert busy.status_code == 409, busy.text
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["message"] == (
            "A request with this Idempotency-Key is still being processed; retry shortly"
        )
        assert 4.5 <= waited < 15

        # While the first attempt is still open, a retry waits; when it rolls back, the
        # retry takes the key over and sends.
        retry = asyncio.create_task(api.post("/v3/notifications", json=body, headers=headers))
        await asyncio.sleep(0.5)
        assert not retry.done()
        await conn.rollback()
    taken_over = await asyncio.wait_for(retry, timeout=10)
    assert taken_over.status_code == 202, taken_over.text
    request_id = taken_over.json()["requestId"]
    assert await deliveries(live_engine, request_id) == {"alice": 1}
    assert await rows(
        live_engine,
        "SELECT CAST(request_id AS text), fingerprint <> 'in-flight' FROM idempotency_keys "
        "WHERE app_id = :app",
        app=live_app.id,
    ) == [(request_id, True)]


@pytest.fixture
def other_live_app(live_server: str) -> Creds:
    response = httpx.post(
        f"{live_server}/admin/apps", json={"name": "live-" + secrets.token_hex(4)}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Creds(body["id"], body["apiKey"], body["apiSecret"])


# -- a poisoned job -----------------------------------------------------------------------------


async def test_a_poisoned_job_is_retried_then_parked_as_failed(
    api: httpx.AsyncClient, poisoned: Poisoned, live_engine: AsyncEngine
) -> None:
    status = await wait_status(api, poisoned.app_id, poisoned.request_id, "failed", within=60)
    # Five runs with 1, 2, 4 and 8 s between them: at least 15 s after it was planted.
    assert time.monotonic() - poisoned.planted >= 15
    assert status["attempts"] == MAX_ATTEMPTS
    assert status["error"].startswith(
        "1 validation error for SendRequest\nnotification\n  Input should be a valid dictionary"
    )
    assert status["delivered"] == 0

    listed = await api.get(f"/admin/apps/{poisoned.app_id}/requests?status=failed", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    assert [(r["requestId"], r["status"]) for r in listed.json()] == [
        (poisoned.request_id, "failed")
    ]

    # PgQueuer holds the job as failed instead of deleting it, for inspection or requeue. It
    # records that from a buffer flushed shortly after the request row says `failed`.
    async def held() -> list[tuple[Any, ...]] | None:
        found = await rows(
            live_engine,
            "SELECT status::text, attempts FROM pgqueuer "
            "WHERE convert_from(payload, 'UTF8')::jsonb->>'requestId' = :rid",
            rid=poisoned.request_id,
        )
        return found if found and found[0][0] != "picked" else None

    assert await wait_for(held, within=15, what="PgQueuer to hold the job") == [
        ("failed", MAX_ATTEMPTS - 1)
    ]
    others = await api.get(f"/admin/apps/{poisoned.app_id}/requests?status=done", headers=ADMIN)
    assert others.json() == []
