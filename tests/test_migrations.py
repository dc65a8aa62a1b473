"""Migrations: the models match them, and every revision goes down and up again cleanly.

Runs on a scratch database of its own, never the one the other tests share. Sync tests on
purpose: Alembic's env.py runs its own event loop."""

import asyncio
import os
from collections.abc import Iterator
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

from app.models import Base
from app.runtime import ROOT, migrate
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
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


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
