"""HERALD_REDIS_URL: live events between processes through Redis, on the Redis at
127.0.0.1:6379 with a channel of each test's own."""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.realtime.server import RELAY_LOCK
from bench.server import free_port, plain
from tests.conftest import ADMIN_TOKEN
from tests.live import running_process
from tests.realtime.client import connected
from tests.realtime.procs import admin_app, send, through_process_with, wait_for_children
from tests.redis_peer import REDIS_URL, skip_without_redis


@pytest.fixture
def channel() -> str:
    skip_without_redis()
    return "herald-test-" + secrets.token_hex(6)


@asynccontextmanager
async def heard(channel: str) -> AsyncIterator[list[dict[str, object]]]:
    """What Redis carries on `channel` while the block runs (decoded messages)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    messages: list[dict[str, object]] = []

    async def read() -> None:
        async for message in pubsub.listen():
            messages.append(json.loads(message["data"]))

    task = asyncio.create_task(read())
    try:
        yield messages
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # Untyped before redis 8.2, typed since: either way, one line for mypy.
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()


async def test_events_cross_processes_through_redis(live_database_url: str, channel: str) -> None:
    env = {"HERALD_REDIS_URL": REDIS_URL, "HERALD_REDIS_CHANNEL": channel}
    with running_process(
        live_database_url, admin_token=ADMIN_TOKEN, extra_env=env, args=["--workers", "2"]
    ) as (base, proc):
        wait_for_children(proc.pid, 2)
        creds = admin_app(base, ADMIN_TOKEN)
        async with (
            heard(channel) as messages,
            connected(base, api_key=creds.api_key, user_id="ann") as ann,
        ):
            for sockets in (0, 1):
                async with through_process_with(base, sockets) as api:
                    await send(api, creds, "ann", f"from a process with {sockets} sockets")
                    new = await ann.wait_for("NEW_NOTIFICATION")
                    assert new["notification"]["title"] == f"from a process with {sockets} sockets"
            # The events went through Redis, one emit each (one process relays, not both).
            emits = [m for m in messages if m.get("method") == "emit"]
            assert [m["event"] for m in emits] == ["NEW_NOTIFICATION", "NEW_NOTIFICATION"]


async def test_the_relay_moves_to_another_process_when_its_holder_dies(
    live_database_url: str, channel: str
) -> None:
    env = {"HERALD_REDIS_URL": REDIS_URL, "HERALD_REDIS_CHANNEL": channel}
    with running_process(
        live_database_url, admin_token=ADMIN_TOKEN, extra_env=env, args=["--workers", "2"]
    ) as (base, proc):
        kids = wait_for_children(proc.pid, 2)
        creds = admin_app(base, ADMIN_TOKEN)
        holder = await relay_holder(live_database_url, other_than=None)
        for victim in sorted(kids):
            # Each child in turn dies (one of them held the relay); sends still arrive.
            os.kill(victim, signal.SIGKILL)
            kids = wait_for_children(proc.pid, 2, other_than={victim})
            # Events published between the holder's death and the takeover are lost (as
            # while a LISTEN connection is down); send once the relay listens again.
            holder = await relay_holder(live_database_url, other_than=holder)
            async with (
                connected(base, api_key=creds.api_key, user_id="bo") as bo,
                through_process_with(base, 0) as api,
            ):
                await send(api, creds, "bo", f"after {victim}")
                new = await bo.wait_for("NEW_NOTIFICATION")
                assert new["notification"]["title"] == f"after {victim}"


async def relay_holder(url: str, *, other_than: int | None) -> int:
    """The backend holding the relay lock, once it listens, another than `other_than` when
    that one is gone, and with one process standing by."""
    conn = await asyncpg.connect(plain(url))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            rows = await conn.fetch(LOCKS, RELAY_LOCK)
            held = [r["pid"] for r in rows if r["granted"] and r["listens"]]
            waiting = [r["pid"] for r in rows if not r["granted"]]
            alive = other_than is not None and other_than in {r["pid"] for r in rows}
            if len(held) == 1 and len(waiting) == 1 and (held[0] != other_than or alive):
                return int(held[0])
            assert asyncio.get_running_loop().time() < deadline, rows
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


# pg_advisory_lock(bigint) keeps the key's high half in classid and its low half in objid.
LOCKS = """
SELECT l.pid, l.granted, a.query ILIKE 'LISTEN%' OR a.query = 'SELECT 1' AS listens
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.objid::bigint = (hashtext($1)::bigint & 4294967295)
  AND l.classid::bigint = ((hashtext($1)::bigint >> 32) & 4294967295)
"""


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:1/0", "HERALD_REDIS_URL: cannot connect to redis://127.0.0.1:1/0: "),
        ("http://127.0.0.1:6379", "HERALD_REDIS_URL: must be a URL like redis://host:6379/0"),
        ("redis://:hunter22@127.0.0.1:1/0", "HERALD_REDIS_URL: cannot connect to redis://:***@"),
    ],
)
def test_a_bad_redis_url_is_one_line_and_exit_78(
    live_database_url: str, url: str, problem: str
) -> None:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": live_database_url,
        "HERALD_ADMIN_TOKEN": ADMIN_TOKEN,
        "HERALD_REDIS_URL": url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("herald: " + problem), lines[0]
    assert "hunter22" not in done.stderr
