"""Group commit of plain sends (app/sends/group.py): concurrent sends share a transaction,
each is answered after its own rows are committed, and a failing one fails alone."""

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from asyncpg import ForeignKeyViolationError
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_sessionmaker
from app.inbox import events
from app.inbox.models import Notification
from app.kit.timefmt import utcnow
from app.sends.group import GroupCommit, Send
from app.sends.models import NotificationRequest, SendStatus
from app.users.models import User
from tests.factories import Creds, send_body


async def _rows(session: AsyncSession, request_id: str) -> list[tuple[str, str]]:
    """(recipient identifier, title) of a request's inbox rows."""
    rows = await session.execute(
        select(User.identifier, Notification.title)
        .join(User, User.id == Notification.user_id)
        .where(Notification.request_id == uuid.UUID(request_id))
        .order_by(User.identifier)
    )
    return [(identifier, title) for identifier, title in rows]


def _send(app_id: int, user: str) -> Send:
    return Send(
        app_id=app_id,
        request_id=uuid.uuid4(),
        payload={"notification": {"title": user}},
        identifiers=(user,),
        content={
            "title": user,
            "message": None,
            "icon": None,
            "url": None,
            "data": {"k": 1},
            "blocks": None,
            "tenant": None,
        },
        cancellation_key=None,
        workflow_identifier=None,
        created_at=utcnow(),
    )


async def test_concurrent_plain_sends_are_grouped_and_each_gets_exactly_its_rows(
    live_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    bodies = [send_body(f"g{i % 7}", f"h{i}", title=f"n{i}") for i in range(40)]
    async with httpx.AsyncClient(base_url=live_server, headers=live_app.backend(), timeout=60) as c:
        responses = await asyncio.gather(*(c.post("/v3/notifications", json=b) for b in bodies))

    assert [r.status_code for r in responses] == [202] * 40, [r.text for r in responses]
    ids = [r.json()["requestId"] for r in responses]
    assert len(set(ids)) == 40
    async with AsyncSession(live_engine) as session:
        for i, request_id in enumerate(ids):
            rows = await _rows(session, request_id)
            assert rows == sorted([(f"g{i % 7}", f"n{i}"), (f"h{i}", f"n{i}")])
            request = await session.get(NotificationRequest, uuid.UUID(request_id))
            assert request is not None
            assert (request.app_id, request.status, request.recipient_count) == (
                live_app.id,
                SendStatus.DONE,
                2,
            )
        # Rows a transaction wrote share its id (xmin): fewer transactions than sends.
        transactions = await session.scalar(
            text("SELECT count(DISTINCT xmin::text) FROM notification_requests WHERE app_id = :a"),
            {"a": live_app.id},
        )
    assert transactions is not None
    assert transactions < 40


async def test_a_send_failing_in_its_group_fails_alone(
    app: FastAPI, session: AsyncSession, creds: Creds
) -> None:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    group = GroupCommit(lambda: maker)
    send = _send
    missing_app = -1  # no such app: its request row breaks the foreign key
    sends = [send(creds.id, f"ok{i}") for i in range(5)]
    sends.insert(2, send(missing_app, "lost"))
    results = await asyncio.gather(*(group.write(s) for s in sends), return_exceptions=True)

    assert [type(r) for r in results] == [type(None)] * 2 + [ForeignKeyViolationError] + [
        type(None)
    ] * 3
    # One group of six failed; each send was then written alone, the bad one in vain.
    assert group.groups == 5
    for s in sends:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.request_id == s.request_id)
        )
        assert count == (0 if s.app_id == missing_app else 1)
    data: Any = await session.scalar(
        select(Notification.data).where(Notification.request_id == sends[0].request_id)
    )
    assert data == {"k": 1}


async def test_idempotent_and_failing_sends_beside_a_group_keep_their_own_answers(
    live_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    keyed = send_body("kay", title="keyed")
    backend = live_app.backend()
    calls: list[tuple[dict[str, object], dict[str, str]]] = [
        (send_body(f"p{i}", title=f"plain{i}"), backend) for i in range(20)
    ]
    headers = {**backend, "Idempotency-Key": "order-1"}
    calls.insert(3, (keyed, headers))
    calls.insert(6, (keyed, headers))
    calls.insert(9, (send_body("kay", title="another body"), headers))
    bad_topic = {"notification": {"title": "t"}, "sendTo": {"topics": ["nope"]}}
    calls.insert(11, (bad_topic, backend))
    async with httpx.AsyncClient(base_url=live_server, timeout=60) as c:
        responses = await asyncio.gather(
            *(c.post("/v3/notifications", json=b, headers=h) for b, h in calls)
        )

    plain = [r for (_, h), r in zip(calls, responses, strict=True) if "Idempotency-Key" not in h]
    assert sorted(r.status_code for r in plain) == [202] * 20 + [400]
    keyed_answers = [responses[3], responses[6], responses[9]]
    # Whichever of the three came first owns the key and is sent; an identical retry gets
    # its answer (or 409 while it is still being written), another body 422 (or 409).
    owners = [r for r in keyed_answers if r.status_code == 202]
    owner = owners[0]
    owner_title = "another body" if owner is keyed_answers[2] else "keyed"
    for r in keyed_answers:
        same_body = (r is keyed_answers[2]) == (owner is keyed_answers[2])
        if r is not owner:
            assert r.status_code == 409 or (
                r.json() == owner.json() if same_body else r.status_code == 422
            ), r.text
    async with AsyncSession(live_engine) as session:
        for r in plain:
            if r.status_code == 202:
                rows = await _rows(session, r.json()["requestId"])
                assert len(rows) == 1
                assert rows[0][0].startswith("p")
        assert await _rows(session, owner.json()["requestId"]) == [("kay", owner_title)]
        requests = await session.scalar(
            select(func.count())
            .select_from(NotificationRequest)
            .where(NotificationRequest.app_id == live_app.id)
        )
    assert requests == 21  # the 20 plain sends and the key's owner


@pytest.mark.parametrize("recipients", [["solo"], ["a@example.com", "b"]])
async def test_a_lone_send_is_written_at_once_by_its_own_group(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    recipients: list[str],
) -> None:
    response = await client.post(
        "/v3/notifications", json=send_body(*recipients), headers=creds.backend()
    )
    assert response.status_code == 202
    rows = await _rows(session, response.json()["requestId"])
    assert [identifier for identifier, _ in rows] == sorted(recipients)
    profile = await session.scalar(
        select(User.profile).where(User.app_id == creds.id, User.identifier == recipients[0])
    )
    # As users_repository.ensure makes them: an e-mail-like identifier is the e-mail.
    assert profile == ({"email": recipients[0]} if "@" in recipients[0] else {})


async def test_the_group_function_plans_its_statements_once_per_connection(
    session: AsyncSession,
) -> None:
    # Left to choose, PostgreSQL planned them on every call: a third of a small group's
    # cost on the server (migrations 0016 and 0017).
    config = await session.scalar(
        text("SELECT proconfig FROM pg_proc WHERE proname = 'write_send_group'")
    )
    assert config == ["plan_cache_mode=force_generic_plan"]


@pytest.mark.parametrize("other_commits", [True, False])
async def test_a_send_to_a_user_another_transaction_is_creating_gets_its_row(
    live_app: Creds, live_engine: AsyncEngine, other_commits: bool
) -> None:
    # The group's user insert waits for the other transaction's row; its inbox insert, a
    # later statement, must then see that user (committed) or its own (rolled back), not
    # find neither and write nothing.
    group = GroupCommit(lambda: make_sessionmaker(live_engine))
    send = _send(live_app.id, "racer")
    async with live_engine.connect() as other:
        await other.execute(
            text("INSERT INTO users (app_id, identifier, profile) VALUES (:a, 'racer', '{}')"),
            {"a": live_app.id},
        )
        written = asyncio.create_task(group.write(send))
        async with live_engine.connect() as watch:
            # Each look in a transaction of its own: one keeps its first view of the stats.
            await watch.execution_options(isolation_level="AUTOCOMMIT")
            # The sentinel: a backend blocked on a lock inside write_send_group.
            while not await watch.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%write_send_group%'"
                )
            ):
                assert not written.done(), written
                await asyncio.sleep(0.01)
        await (other.commit() if other_commits else other.rollback())
        await asyncio.wait_for(written, timeout=30)

    async with AsyncSession(live_engine) as session:
        assert await _rows(session, str(send.request_id)) == [("racer", "racer")]
        users = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.app_id == live_app.id, User.identifier == "racer")
        )
    assert users == 1


@pytest.mark.parametrize(("short_of_cpu", "groups"), [(True, 1), (False, 2)])
async def test_short_of_cpu_a_group_waits_for_the_sends_on_their_way(
    live_app: Creds,
    live_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    short_of_cpu: bool,
    groups: int,
) -> None:
    # Six sends, one per turn of the event loop. With a core to spare the first is written
    # at once and the other five wait for it; short of CPU, all six make one group.
    monkeypatch.setattr("app.sends.group.GATHER_MOST", 30.0)  # however slow the machine
    group = GroupCommit(lambda: make_sessionmaker(live_engine), short_of_cpu=lambda: short_of_cpu)
    sends = [_send(live_app.id, f"turn{i}") for i in range(6)]
    writes = []
    for send in sends:
        writes.append(asyncio.create_task(group.write(send)))
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*writes), timeout=30)

    assert group.groups == groups
    async with AsyncSession(live_engine) as session:
        for send in sends:
            assert await _rows(session, str(send.request_id)) == [(send.identifiers[0],) * 2]


async def _listening(dsn: str, heard: asyncio.Queue[str]) -> asyncpg.Connection:
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(events.CHANNEL, lambda *args: heard.put_nowait(args[3]))
    return listener


async def test_a_groups_events_name_exactly_its_committed_rows(
    live_app: Creds, live_engine: AsyncEngine, live_database_url: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await _listening(live_database_url.replace("+asyncpg", "", 1), heard)
    try:
        group = GroupCommit(lambda: make_sessionmaker(live_engine))
        sends = [_send(live_app.id, f"ev{i}") for i in range(5)]
        await asyncio.gather(*(group.write(s) for s in sends))
        # Sent before the answers, on another connection: it reaches the listener within
        # moments, if not already.
        pairs: list[tuple[int, int | None]] = []
        while len(pairs) < 5:
            event, more = events.decode(await asyncio.wait_for(heard.get(), timeout=10))
            assert event == "NEW_NOTIFICATION"
            pairs += more
    finally:
        await listener.close()

    async with AsyncSession(live_engine) as session:
        rows = await session.execute(
            select(Notification.user_id, Notification.id).where(
                Notification.request_id.in_([s.request_id for s in sends])
            )
        )
        assert sorted(pairs) == sorted((u, n) for u, n in rows)


async def test_events_that_cannot_be_sent_leave_the_committed_sends_answered(
    live_app: Creds,
    live_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL refuses a channel name of 64 bytes or more: the NOTIFY fails, after the
    # commit of the rows it announces.
    monkeypatch.setattr(events, "CHANNEL", "x" * 64)
    group = GroupCommit(lambda: make_sessionmaker(live_engine))
    send = _send(live_app.id, "unheard")
    with caplog.at_level(logging.WARNING, logger="herald.sends"):
        await group.write(send)

    assert group.groups == 1
    assert "a group of 1 sends committed, then failed" in caplog.text
    async with AsyncSession(live_engine) as session:
        assert await _rows(session, str(send.request_id)) == [("unheard", "unheard")]
