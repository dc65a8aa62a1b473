"""Migrations: the models match them, every revision goes down and up again cleanly, and
processes that migrate one database at once take turns.

Runs on scratch databases of its own, never the one the other tests share. Sync tests on
purpose: Alembic's env.py runs its own event loop."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import MIGRATION_LOCK
from app.models import Base
from app.runtime import alembic_config, migrate
from tests import db

# Ends in the pid like the shared test database, so a crashed run's copy is swept up later.
SCRATCH = f"herald_test_migrations_{os.getpid()}"


@pytest.fixture(scope="module")
def scratch(server_url: str) -> Iterator[str]:
    url = asyncio.run(db.recreate(server_url, SCRATCH))
    migrate(url)
    yield url
    asyncio.run(db.drop(server_url, SCRATCH))


def config(url: str) -> Config:
    """The configuration `herald migrate` uses (app.runtime.migrate)."""
    return alembic_config(url)


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PgQueuer's tables come from a migration but are described by PgQueuer, not our models.
    return not (type_ == "table" and reflected and (name or "").startswith("pgqueuer"))


def _compare(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": _ours,
        },
    )
    return list(compare_metadata(context, Base.metadata))


def differences(url: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


SCHEMA = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'type ' || typname FROM pg_type
 WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c') AND typrelid = 0
UNION ALL
SELECT 'function ' || proname || '(' || pg_get_function_identity_arguments(oid) || ')'
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public'
"""


def schema(url: str) -> list[str]:
    """Everything the migrations create in the public schema, as sorted lines."""

    async def run() -> list[str]:
        conn = await asyncpg.connect(db.plain(url))
        try:
            return sorted(row[0] for row in await conn.fetch(SCHEMA))
        finally:
            await conn.close()

    return asyncio.run(run())


def current(url: str) -> str | None:
    async def run() -> str | None:
        conn = await asyncpg.connect(db.plain(url))
        try:
            exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            if not exists:
                return None
            value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
            return value
        finally:
            await conn.close()

    return asyncio.run(run())


def test_models_match_the_migrations(scratch: str) -> None:
    assert differences(scratch) == []
    # The project's own check (env.py's options) agrees.
    command.check(config(scratch))


def test_head_is_single_and_applied(scratch: str) -> None:
    script = ScriptDirectory.from_config(config(scratch))
    heads = script.get_heads()
    assert len(heads) == 1, f"several heads: {heads}"
    assert current(scratch) == heads[0]


def test_every_revision_goes_down_and_up(scratch: str) -> None:
    cfg = config(scratch)
    at_head = schema(scratch)
    assert any(line.startswith("column apps.") for line in at_head)

    script = ScriptDirectory.from_config(cfg)
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    # One step at a time from the top: each downgrade undoes exactly its upgrade.
    shapes = {revisions[-1]: at_head}
    for revision in reversed(revisions):
        command.downgrade(cfg, "-1")
        below = schema(scratch)
        command.upgrade(cfg, "+1")
        assert schema(scratch) == shapes[revision], f"{revision} does not round-trip"
        command.downgrade(cfg, "-1")
        parent = script.get_revision(revision).down_revision
        assert isinstance(parent, str | None)
        shapes[parent or "base"] = below

    # At base nothing of Herald's is left but Alembic's own table.
    assert current(scratch) is None
    leftovers = [line for line in schema(scratch) if "alembic_version" not in line]
    assert leftovers == []

    command.upgrade(cfg, "head")
    assert schema(scratch) == at_head
    assert differences(scratch) == []


def test_the_migrations_a_checkout_runs_are_its_own(scratch: str) -> None:
    # An editable install finds the top-level migrations/, never a copy elsewhere.
    checkout = Path(__file__).resolve().parent.parent / "migrations"
    assert Path(config(scratch).get_main_option("script_location") or "") == checkout


REPLICAS = 4


WAITING = "another process is migrating this database"


def test_concurrent_migrations_take_turns(server_url: str, tmp_path: Path) -> None:
    """4 `herald migrate` started together on an empty database: one migrates, the others
    wait for it, then find nothing to do; all exit 0."""
    name = f"herald_test_concurrent_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    env = {**os.environ, "HERALD_DATABASE_URL": url, "HERALD_LOG_LEVEL": "info"}
    logs = [tmp_path / f"migrate-{i}.log" for i in range(REPLICAS)]
    procs: list[subprocess.Popen[bytes]] = []
    loop = asyncio.new_event_loop()
    # Holding the lock ourselves lines the 4 up behind it, so they really contend: each has
    # found the lock taken before any of them may begin.
    holder: asyncpg.Connection = loop.run_until_complete(asyncpg.connect(db.plain(url)))
    try:
        loop.run_until_complete(holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK))
        for log in logs:
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app.cli", "migrate"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp_path,
                    )
                )
        deadline = time.monotonic() + 60
        while not all(WAITING in log.read_text() for log in logs):
            assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
            assert time.monotonic() < deadline, "the migrators never all waited"
            time.sleep(0.05)
        # Nobody began while we held the lock.
        began = loop.run_until_complete(holder.fetchval("SELECT to_regclass('alembic_version')"))
        assert began is None
        loop.run_until_complete(holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK))

        codes = [p.wait(timeout=120) for p in procs]
        outputs = [log.read_text() for log in logs]
        assert codes == [0] * REPLICAS, outputs
        migrated = [out for out in outputs if "Running upgrade" in out]
        assert len(migrated) == 1, outputs
        # The one that migrated ran every revision, 0003's CREATE INDEX CONCURRENTLY included,
        # while the others polled the lock.
        script = ScriptDirectory.from_config(config(url))
        assert migrated[0].count("Running upgrade") == len(list(script.walk_revisions()))
        assert current(url) == script.get_current_head()
        assert "Traceback" not in "".join(outputs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        loop.run_until_complete(holder.close())
        loop.close()
        asyncio.run(db.drop(server_url, name))
