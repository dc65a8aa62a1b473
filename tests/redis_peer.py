"""The Redis the tests use (HERALD_TEST_REDIS_URL, by default 127.0.0.1:6379), and a skip
with the reason when none answers."""

import asyncio
import os

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _answers() -> bool:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.ConnectionError):
        return False
    finally:
        await client.aclose()


def skip_without_redis() -> None:
    if not asyncio.run(_answers()):
        pytest.skip(f"no Redis answers at {REDIS_URL} (set HERALD_TEST_REDIS_URL)")
