"""INVALID indexes (app/schema_health.py): `/ready` reports them, `herald migrate` rebuilds them,
drops what a failed rebuild left, and exits non-zero naming one it cannot rebuild.

Runs on a scratch database of its own. Sync tests on purpose: Alembic's env.py runs its own
event loop."""

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.runtime import migrate
from tests import db

SCRATCH = f"herald_test_indexes_{os.getpid()}"
# What an interrupted CREATE INDEX CONCURRENTLY leaves: the index, flagged INVALID. Written
# to the catalog directly (superuser only), since interrupting a build at the right moment
# cannot be timed; the genuine article is made below by a unique build over duplicates.
FLAG_INVALID = "UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST($1 AS regclass)"


@pytest.fixture(scope="module")
def scratch(server_url: str) -> Iterator[str]:
    url = asyncio.run(db.recreate(server_url, SCRATCH))
    migrate(url)
    yield url
    asyncio.run(db.drop(server_url, SCRATCH))


def sql(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(db.plain(url))
        try:
            rows: list[asyncpg.Record] = await conn.fetch(statement, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def validity(url: str) -> dict[str, bool]:
    rows = sql(
        url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relnamespace = 'public'::regnamespace",
    )
    return {r[0]: r[1] for r in rows}


def ready(settings: Settings, url: str) -> httpx.Response:
    async def run() -> httpx.Response:
        app = create_app(settings)
        app.state.engine = make_engine(url, pool_size=1)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://h.test") as c:
                return await c.get("/ready")
        finally:
            await app.state.engine.dispose()

    return asyncio.run(run())


def _flag_invalid(url: str, index: str) -> None:
    try:
        sql(url, FLAG_INVALID, index)
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("flagging an index INVALID needs a superuser on the test server")


def test_ready_reports_an_invalid_index_and_migrate_rebuilds_it(
    scratch: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert ready(settings, scratch).status_code == 200
    _flag_invalid(scratch, "ix_notifications_created_at")
    # And the copy a REINDEX CONCURRENTLY that died would have left beside it.
    sql(scratch, "CREATE INDEX ix_notifications_created_at_ccnew ON notifications (user_id)")
    _flag_invalid(scratch, "ix_notifications_created_at_ccnew")

    answer = ready(settings, scratch)
    assert answer.status_code == 503
    assert answer.json()["message"] == (
        "INVALID index: ix_notifications_created_at, ix_notifications_created_at_ccnew; "
        "run `herald migrate` to rebuild it"
    )

    caplog.set_level("INFO", logger="herald.migrate")
    migrate(scratch)  # what `herald migrate` and `herald serve` run
    indexes = validity(scratch)
    assert indexes["ix_notifications_created_at"] is True
    assert "ix_notifications_created_at_ccnew" not in indexes
    assert all(indexes.values())
    said = [r.getMessage() for r in caplog.records if r.name == "herald.migrate"]
    assert any("ix_notifications_created_at is INVALID" in line for line in said), said
    assert ready(settings, scratch).status_code == 200


def test_migrate_names_an_index_it_cannot_rebuild_and_exits_non_zero(
    scratch: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="herald.migrate")
    # A genuine failed concurrent build: a unique index over duplicates stays INVALID. (On a
    # table of the test's own: the repair covers every index of Herald's schema.)
    sql(scratch, "CREATE TABLE twins (name text)")
    sql(scratch, "INSERT INTO twins VALUES ('castor'), ('castor')")
    with pytest.raises(asyncpg.UniqueViolationError):
        sql(scratch, "CREATE UNIQUE INDEX CONCURRENTLY ix_twins ON twins (name)")
    assert validity(scratch)["ix_twins"] is False
    try:
        assert "ix_twins" in ready(settings, scratch).json()["message"]

        # `herald migrate` (and `herald serve`) exit with this one line: SystemExit prints it
        # and returns 1, without a traceback.
        with pytest.raises(SystemExit) as failed:
            migrate(scratch)
        assert failed.value.code == (
            "herald migrate: INVALID index ix_twins could not be rebuilt (the error is "
            "logged above); fix its cause and run `herald migrate` again"
        )
        said = [r.getMessage() for r in caplog.records if r.name == "herald.migrate"]
        assert any(line.startswith("migrate: could not repair index ix_twins") for line in said)
        # The failed rebuild's own copy was removed, not left to pile up.
        assert [n for n in validity(scratch) if n.startswith("ix_twins")] == ["ix_twins"]

        sql(scratch, "DELETE FROM twins WHERE ctid = (SELECT max(ctid) FROM twins)")
        migrate(scratch)
        assert validity(scratch)["ix_twins"] is True
        assert ready(settings, scratch).status_code == 200
    finally:
        sql(scratch, "DROP TABLE twins")
