"""SIGKILL of `herald serve` during sends, then a new process on the same database: every 202
has its inbox rows, none twice, and no send stays `queued` or `fanning_out`.

Sends in flight when the process dies get no answer at all; some of them had committed. The
test counts those (a client that retries them without an Idempotency-Key sends them twice:
README, Operations) and checks they too are delivered exactly once."""

import asyncio
import secrets
import signal
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from app.runtime import migrate
from tests import db
from tests.faults.load import Load, Tally, rows_per_request
from tests.live import running_process
from tests.shared_server import own_database

pytestmark = pytest.mark.live

ADMIN_TOKEN = "kill-admin-" + secrets.token_hex(8)
SENDS = 600
CONCURRENCY = 8
KILL_AFTER = 150
TOPIC_EVERY = 10  # every 10th send goes to the topic (the worker's), the rest to one user
SUBSCRIBERS = 2_000
# A job whose worker died is taken over once its heartbeat (10 s) is stale; an idle worker
# looks at least once a heartbeat (app/worker.py).
SETTLE_WITHIN = 60


@pytest.fixture(scope="module")
def kill_database(pg_server: str) -> Iterator[str]:
    with own_database(pg_server, "kill") as url:
        migrate(url)
        yield url


async def _setup(base: str, url: str) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        made = await c.post(
            "/admin/apps", json={"name": "kill"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert made.status_code == 201, made.text
        app = made.json()
        headers = {
            "X-ENGAGESPOT-API-KEY": app["apiKey"],
            "X-ENGAGESPOT-API-SECRET": app["apiSecret"],
        }
        topic = await c.post("/v3/topics", json={"name": "Crowd"}, headers=headers)
        assert topic.status_code == 201, topic.text
    conn = await asyncpg.connect(db.plain(url))
    try:
        await conn.execute(
            """
            WITH created AS (
                INSERT INTO users (app_id, identifier)
                SELECT $1, 'crowd-' || i FROM generate_series(1, $3::int) AS i RETURNING id)
            INSERT INTO topic_subscriptions (topic_id, user_id) SELECT $2, id FROM created
            """,
            app["id"],
            topic.json()["id"],
            SUBSCRIBERS,
        )
    finally:
        await conn.close()
    return int(app["id"]), headers


def _body(i: int) -> dict[str, object]:
    to: dict[str, object] = (
        {"topics": ["crowd"]} if i % TOPIC_EVERY == 0 else {"recipients": [f"user-{i}"]}
    )
    return {"notification": {"title": f"kill {i}"}, "sendTo": to}


async def _unsettled(url: str, app_id: int) -> int:
    conn = await asyncpg.connect(db.plain(url))
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM notification_requests "
            "WHERE app_id = $1 AND status IN ('queued', 'fanning_out')",
            app_id,
        )
        return n
    finally:
        await conn.close()


async def _titles(url: str, app_id: int) -> dict[str, str]:
    """request id -> the title it was sent with."""
    conn = await asyncpg.connect(db.plain(url))
    try:
        rows = await conn.fetch(
            "SELECT id::text, payload->'notification'->>'title' FROM notification_requests "
            "WHERE app_id = $1",
            app_id,
        )
        return {r[0]: r[1] for r in rows}
    finally:
        await conn.close()


async def test_sigkill_of_herald_serve_during_sends_loses_and_repeats_nothing(
    kill_database: str,
) -> None:
    url = kill_database
    with running_process(url, admin_token=ADMIN_TOKEN) as (base, proc):
        app_id, headers = await _setup(base, url)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            load = Load(client, lambda _: headers, _body, SENDS, CONCURRENCY)

            async def kill() -> None:
                await load.after(KILL_AFTER)
                # No shutdown hook runs: requests, jobs and connections die where they are.
                proc.send_signal(signal.SIGKILL)
                load.stop()

            answers, _ = await asyncio.gather(load.run(), kill())
            proc.wait(timeout=10)

    accepted = {a.request_id: a.index for a in answers if a.request_id is not None}
    unanswered = [a for a in answers if a.status is None]
    assert all(a.status in (202, None) for a in answers), [a for a in answers if a.status]
    assert unanswered, "the kill reached no send in flight"

    with running_process(url, admin_token=ADMIN_TOKEN) as (base, _):
        restarted = time.monotonic()
        deadline = restarted + SETTLE_WITHIN
        while (left := await _unsettled(url, app_id)) > 0:
            assert time.monotonic() < deadline, f"{left} sends still queued or fanning out"
            await asyncio.sleep(0.2)
        settled = time.monotonic() - restarted

    rows = await rows_per_request(url, app_id)
    titles = await _titles(url, app_id)

    def audience(index: int) -> int:
        return SUBSCRIBERS if index % TOPIC_EVERY == 0 else 1

    found = sum(1 for rid, i in accepted.items() if rows.get(rid) == audience(i))
    assert found == len(accepted), "a 202 without all its rows"
    # Every send in the database, answered or not, holds exactly its audience once.
    index_of = {rid: int(title.split()[1]) for rid, title in titles.items()}
    wrong = {rid: n for rid, n in rows.items() if n != audience(index_of[rid])}
    assert wrong == {}
    assert len(set(titles.values())) == len(titles), "a send was stored twice"
    committed_unanswered = len(rows) - len(accepted)
    assert 0 <= committed_unanswered <= len(unanswered)

    tally = Tally(len(accepted), found, len(wrong), 0, len(unanswered), settled)
    print(
        "\n"
        + tally.line(f"SIGKILL of herald serve after {KILL_AFTER} of {SENDS} sends")
        + f" the new process started; {committed_unanswered} of the unanswered had committed"
        f" (delivered once each); none left queued or fanning_out"
    )
