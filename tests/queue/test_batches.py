"""The worker's batches, run in-process on the test transaction: cursor, each user once,
harmless re-runs, cancellation between batches, and how a failure is recorded."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.inbox.models import Notification
from app.sends import fanout, tasks
from app.sends.models import NotificationRequest
from app.users.models import User
from tests.factories import Creds

LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


@pytest.fixture
def maker(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    """The sessionmaker the app under test uses: savepoints in the test's transaction."""
    made: async_sessionmaker[AsyncSession] = session.info["maker"]
    return made


async def _topic(client: httpx.AsyncClient, creds: Creds, identifier: str, users: list[Any]) -> int:
    created = await client.post(
        "/v3/topics", json={"name": identifier, "identifier": identifier}, headers=creds.backend()
    )
    assert created.status_code == 201, created.text
    topic_id: int = created.json()["id"]
    subscribed = await client.post(
        f"/v3/topics/{topic_id}/users", json={"users": users}, headers=creds.backend()
    )
    assert subscribed.status_code == 200, subscribed.text
    return topic_id


async def _send(client: httpx.AsyncClient, creds: Creds, body: dict[str, Any]) -> uuid.UUID:
    response = await client.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["requestId"])


async def _ids(session: AsyncSession, app_id: int) -> dict[str, int]:
    rows = await session.execute(select(User.identifier, User.id).where(User.app_id == app_id))
    return {identifier: user_id for identifier, user_id in rows}


async def _written(session: AsyncSession, request_id: uuid.UUID) -> list[str]:
    """Identifiers with an inbox row for the send, one entry per row, sorted."""
    rows = await session.scalars(
        select(User.identifier)
        .join(Notification, Notification.user_id == User.id)
        .where(Notification.request_id == request_id)
        .order_by(User.identifier)
    )
    return list(rows)


async def _request(session: AsyncSession, request_id: uuid.UUID) -> NotificationRequest:
    request = await session.scalar(
        select(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    assert request is not None
    return request


async def _batch(
    maker: async_sessionmaker[AsyncSession], request_id: uuid.UUID, size: int
) -> fanout.Progress:
    async with maker.begin() as s:
        return await fanout.run_batch(s, request_id, batch=size)


async def test_batches_follow_the_cursor_and_reach_each_user_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    creds: Creds,
) -> None:
    members = ["m1", "m2", "m3", "m4"]
    await _topic(client, creds, "first", [{"identifier": m} for m in members])
    await _topic(client, creds, "second", [{"identifier": "m2"}, {"identifier": "m5"}])
    # Scheduled, so the listed recipients are left to the worker too.
    request_id = await _send(
        client,
        creds,
        {
            "notification": {"title": "Batched"},
            "sendTo": {"recipients": ["solo", "m3"], "topics": ["first", "second"]},
            "sendAt": LATER,
        },
    )
    ids = await _ids(session, creds.id)
    order = sorted(["m1", "m2", "m3", "m4", "m5", "solo"], key=ids.__getitem__)
    assert await _written(session, request_id) == []

    for end in (2, 4, 6):
        step = await _batch(maker, request_id, 2)
        request = await _request(session, request_id)
        assert (step.done, step.written) == (False, 2)
        assert (request.status, request.cursor) == ("fanning_out", ids[order[end - 1]])
        assert await _written(session, request_id) == sorted(order[:end])
    last = await _batch(maker, request_id, 2)
    assert last == fanout.Progress(done=True, written=0)
    assert (await _request(session, request_id)).status == "done"
    assert await _written(session, request_id) == sorted(order)

    # A second run of the same job (e.g. re-picked after a lost heartbeat) finds nothing to do,
    # and one that starts over writes nothing twice.
    assert await tasks.fan_out(maker, request_id, batch=2) == 0
    await session.execute(
        update(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .values(cursor=0, status="queued")
    )
    assert await tasks.fan_out(maker, request_id, batch=4) == 0
    assert await _written(session, request_id) == sorted(order)
    assert (await _request(session, request_id)).status == "done"


async def test_topics_are_read_when_the_batch_runs(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    creds: Creds,
) -> None:
    topic_id = await _topic(
        client, creds, "news", [{"identifier": "stays"}, {"identifier": "goes"}]
    )
    request_id = await _send(
        client, creds, {"notification": {"title": "Live"}, "sendTo": {"topics": ["news"]}}
    )
    detached = await client.post(
        f"/v3/topics/{topic_id}/detachUsers", json={"users": ["goes"]}, headers=creds.backend()
    )
    assert detached.json()["count"] == 1
    muted = await client.put(
        f"/v3/topics/{topic_id}/users/stays", json={"channels": ["sms"]}, headers=creds.backend()
    )
    assert muted.status_code == 200
    await client.post(
        f"/v3/topics/{topic_id}/users",
        json={"users": [{"identifier": "joins", "channels": ["inApp"]}]},
        headers=creds.backend(),
    )
    assert await tasks.fan_out(maker, request_id, batch=10) == 1
    assert await _written(session, request_id) == ["joins"]


async def test_cancelling_between_batches(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    creds: Creds,
) -> None:
    members = [f"m{i}" for i in range(1, 7)]
    await _topic(client, creds, "all", [{"identifier": m} for m in members])
    ids = await _ids(session, creds.id)
    order = sorted(members, key=ids.__getitem__)
    flow = {"identifier": "digest", "cancellationKey": "k"}
    some = await _send(
        client,
        creds,
        {"notification": {"title": "Some", "workflow": flow}, "sendTo": {"topics": ["all"]}},
    )
    every = await _send(
        client,
        creds,
        {
            "notification": {"title": "Every", "workflow": {**flow, "cancellationKey": "k2"}},
            "sendTo": {"topics": ["all"]},
        },
    )
    for request_id in (some, every):
        assert (await _batch(maker, request_id, 2)).written == 2

    # One recipient of a later batch, and one already written (that row stays).
    response = await client.patch(
        "/v4/workflows/digest",
        json={"cancellationKey": "k", "cancelFor": {"recipients": [order[0], order[4]]}},
        headers=creds.backend(),
    )
    assert response.json()["cancelled"] == 1
    response = await client.patch(
        "/v4/workflows/digest", json={"cancellationKey": "k2"}, headers=creds.backend()
    )
    assert response.json()["cancelled"] == 1

    assert await tasks.fan_out(maker, some, batch=2) == 3
    assert await _written(session, some) == sorted(order[0:4] + order[5:6])
    assert (await _request(session, some)).status == "done"

    assert await tasks.fan_out(maker, every, batch=2) == 0
    assert await _written(session, every) == sorted(order[0:2])
    assert (await _request(session, every)).status == "cancelled"


async def test_a_payload_the_worker_cannot_read_fails_and_is_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    creds: Creds,
) -> None:
    request_id = await _send(
        client,
        creds,
        {"notification": {"title": "Fine"}, "sendTo": {"recipients": ["a"]}, "sendAt": LATER},
    )
    await session.execute(
        update(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .values(payload={"notification": []})
    )
    with pytest.raises(ValidationError):
        await tasks.fan_out(maker, request_id, batch=10)
    request = await _request(session, request_id)
    # The failed batch rolled back: nothing written, the cursor did not move.
    assert (request.status, request.cursor) == ("scheduled", 0)
    assert await _written(session, request_id) == []

    for final in (False, False, True):
        async with maker.begin() as s:
            await fanout.record_failure(s, request_id, error="ValueError('x')", final=final)
    request = await _request(session, request_id)
    assert (request.status, request.attempts, request.error) == ("failed", 3, "ValueError('x')")
    # A failed send is finished: a stray re-run does nothing.
    assert await tasks.fan_out(maker, request_id, batch=10) == 0
