"""The PostgreSQL server the fault tests run on: HERALD_TEST_PGSERVER_URL, by default
postgres@127.0.0.1:5432 (trust auth). Each test works in a database of its own, named after
the test process so a crashed run's copy is swept up later (tests/db.py), and dropped after.

Without a server the tests skip with the reason, unless HERALD_REQUIRE_PGSERVER=1 (CI),
where they fail instead."""

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import asyncpg
import pytest

from tests import db

SERVER = os.environ.get("HERALD_TEST_PGSERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def missing(reason: str) -> NoReturn:
    if os.environ.get("HERALD_REQUIRE_PGSERVER") == "1":
        pytest.fail(f"{reason} (HERALD_REQUIRE_PGSERVER=1)")
    pytest.skip(reason)


async def _probe(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=3)
    await conn.close()


def server() -> str:
    """The server's URL (asyncpg dialect), or a skip saying why there is none."""
    try:
        asyncio.run(_probe(SERVER))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        where = SERVER.rsplit("@", 1)[-1]
        missing(f"no PostgreSQL server at {where} ({exc}): the fault tests need one")
    return SERVER.replace("postgresql://", "postgresql+asyncpg://", 1)


@contextmanager
def own_database(server_url: str, purpose: str) -> Iterator[str]:
    """A fresh, empty database `herald_test_<purpose>_<pid>`; its URL. Dropped afterwards."""
    name = f"herald_test_{purpose}_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    try:
        yield url
    finally:
        asyncio.run(db.drop(server_url, name))
