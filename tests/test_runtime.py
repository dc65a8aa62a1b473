"""Start-up chores replicas race on: the shared admin token, the first app."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app import runtime
from app.auth.admin_token import digest, matches
from app.config import Settings
from tests import db
from tests.ops.support import scratch_dir

NAME = f"herald_test_runtime_{os.getpid()}"


@pytest.fixture(scope="module")
def runtime_database(server_url: str) -> Iterator[str]:
    url = asyncio.run(db.recreate(server_url, NAME))
    runtime.migrate(url)
    yield url
    asyncio.run(db.drop(server_url, NAME))


async def _sql(url: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.plain(url))
    try:
        rows: list[asyncpg.Record] = await conn.fetch(statement)
        return rows
    finally:
        await conn.close()


@pytest.fixture
def url(runtime_database: str) -> str:
    asyncio.run(_sql(runtime_database, "DELETE FROM admin_tokens"))
    return runtime_database


def settings(data_dir: Path, token: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, admin_token=token)


def stored(url: str) -> list[str]:
    return [r["token_sha256"] for r in asyncio.run(_sql(url, "SELECT * FROM admin_tokens"))]


def test_the_first_makes_the_token_and_the_others_share_it(url: str) -> None:
    first_dir, other_dir = scratch_dir(), scratch_dir()
    first = runtime.admin_token(settings(first_dir), url)
    assert first.created
    assert first.value is not None
    assert first.path == first_dir / "admin-token"
    assert first.path.read_text().strip() == first.value
    assert stored(url) == [digest(first.value)]

    other = runtime.admin_token(settings(other_dir), url)
    assert (other.created, other.value, other.path) == (False, None, None)
    assert other.sha256 == first.sha256
    assert matches(first.value, other.sha256)
    assert not (other_dir / "admin-token").exists()

    again = runtime.admin_token(settings(first_dir), url)
    assert (again.created, again.value, again.path) == (False, first.value, first.path)


def test_the_environment_wins_and_is_not_stored(url: str) -> None:
    token = "an-operator-chosen-token"
    chosen = runtime.admin_token(settings(scratch_dir(), token), url)
    assert chosen.from_env
    assert chosen.sha256 == digest(token)
    assert stored(url) == []


def test_a_token_file_from_before_is_adopted(url: str) -> None:
    data_dir = scratch_dir()
    (data_dir / "admin-token").write_text("kept-from-an-older-herald\n")
    adopted = runtime.admin_token(settings(data_dir), url)
    assert not adopted.created
    assert adopted.value == "kept-from-an-older-herald"
    assert stored(url) == [digest("kept-from-an-older-herald")]


def test_a_stale_token_file_is_not_trusted(url: str, caplog: pytest.LogCaptureFixture) -> None:
    first = runtime.admin_token(settings(scratch_dir()), url)
    stale_dir = scratch_dir()
    (stale_dir / "admin-token").write_text("from-another-database\n")
    other = runtime.admin_token(settings(stale_dir), url)
    assert other.sha256 == first.sha256
    assert other.value is None
    assert "does not accept" in caplog.text
    assert not matches("from-another-database", other.sha256)
