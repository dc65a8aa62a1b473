"""Run `herald migrate` twice at once on one database, trial after trial.

`python -m tests.faults.migrate_pairs LOGDIR URL TRIALS`: imports Herald once; then for each
trial empties the database (drops and recreates its public schema), forks two processes that
enter `herald migrate` (app.cli.main) at the same moment, with their output in
LOGDIR/<trial>-<a|b>.log, and prints one JSON line: the two exit codes, the Alembic revision
and every index with whether it is valid. Forking from an imported interpreter keeps a trial
to the migration itself: on a busy machine starting Python and importing Herald takes
seconds, which would dwarf it."""

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import asyncpg

from app import cli
from app.config import get_settings

_INDEXES = """
SELECT c.relname, i.indisvalid AND i.indisready
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname
"""


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def _state(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
        indexes = [[r[0], r[1]] for r in await conn.fetch(_INDEXES)]
        return {"version": version, "indexes": indexes}
    finally:
        await conn.close()


def _child(url: str, log: Path) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["HERALD_DATABASE_URL"] = url
    os.environ["HERALD_LOG_LEVEL"] = "info"
    get_settings.cache_clear()
    try:
        cli.main(["migrate"])
    except SystemExit as exc:
        if exc.code not in (0, None):
            print(exc.code, file=sys.stderr)
            return 1
    except BaseException as exc:
        traceback.print_exception(exc)
        return 1
    return 0


def main(logdir: Path, url: str, trials: int) -> None:
    for trial in range(trials):
        asyncio.run(_empty(url))
        pids = []
        for side in "ab":
            pid = os.fork()
            if pid == 0:
                code = _child(url, logdir / f"{trial}-{side}.log")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            pids.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        print(json.dumps({"codes": codes, **asyncio.run(_state(url))}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
