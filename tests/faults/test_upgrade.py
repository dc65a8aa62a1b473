"""Two processes upgrading one empty database at once, ten times over: both exit 0, the schema
is at head, every index exists and none is INVALID (issue 12: before the migration lock, 2 of
4 trials deadlocked and left ix_notifications_user INVALID while Alembic recorded it done)."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from app.runtime import alembic_config
from tests import db

TRIALS = 10

_INDEXES = """
SELECT c.relname, i.indisvalid AND i.indisready
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname
"""


async def _state(url: str) -> tuple[str | None, list[tuple[str, bool]]]:
    conn = await asyncpg.connect(db.plain(url))
    try:
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
        return version, [(r[0], r[1]) for r in await conn.fetch(_INDEXES)]
    finally:
        await conn.close()


def test_two_processes_upgrading_one_database_at_once_leave_every_index_valid(
    pg_server: str, tmp_path: Path
) -> None:
    head = ScriptDirectory.from_config(alembic_config(pg_server)).get_current_head()
    names = [f"herald_test_upgrade{n}_{os.getpid()}" for n in range(TRIALS)]
    urls = [asyncio.run(db.recreate(pg_server, name)) for name in names]
    try:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.migrate_pairs", str(tmp_path), *urls],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=db.ROOT,
            check=False,
        )
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        codes = done.stdout.split("\n")[:TRIALS]
        expected: list[tuple[str, bool]] | None = None
        for trial, url in enumerate(urls):
            outputs = [(tmp_path / f"{trial}-{side}.log").read_text() for side in "ab"]
            assert codes[trial] == "0 0", outputs
            assert "Traceback" not in "".join(outputs), outputs
            # One migrated; the other waited for it, then found nothing to do.
            assert sum("Running upgrade" in out for out in outputs) == 1, outputs
            version, indexes = asyncio.run(_state(url))
            assert version == head
            invalid = [name for name, valid in indexes if not valid]
            assert invalid == [], f"trial {trial}: INVALID {invalid}"
            # Every trial builds the same indexes: none skipped, none doubled.
            expected = expected or indexes
            assert indexes == expected, f"trial {trial}"
    finally:
        for name in names:
            asyncio.run(db.drop(pg_server, name))
    assert expected is not None
    assert ("ix_notifications_user", True) in expected
    print(
        f"\n{TRIALS} trials of 2 concurrent `herald migrate` on an empty database: all exited 0, "
        f"{len(expected)} indexes, all valid, each time ({took:.1f} s in all)"
    )
