"""INVALID indexes: found for `/ready`, rebuilt by `herald migrate`.

A `CREATE INDEX CONCURRENTLY` (or `REINDEX … CONCURRENTLY`) that fails or is interrupted
leaves its index behind, marked INVALID: never used by queries, still slowing writes, and
skipped by a rerun's `IF NOT EXISTS`, while Alembic records the revision as applied."""

import logging
import re

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("herald.migrate")

# Indexes of this schema that are INVALID and not being built right now: a concurrent build
# in progress also shows its index INVALID until it finishes, and that is not a fault.
_INVALID = text(
    """
    SELECT c.relname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    WHERE NOT i.indisvalid
      AND c.relnamespace = CAST(current_schema() AS regnamespace)
      AND NOT EXISTS (
          SELECT 1 FROM pg_stat_progress_create_index p
          WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND p.relid = i.indrelid)
    ORDER BY c.relname
    """
)
# The copies a failed REINDEX CONCURRENTLY leaves: drop them, never rebuild them.
_LEFTOVER = re.compile(r"_cc(new|old)\d*$")


async def invalid_indexes(conn: AsyncConnection) -> list[str]:
    """Names of the INVALID indexes in the connection's schema (none while being built)."""
    return list(await conn.scalars(_INVALID))


async def problem(conn: AsyncConnection) -> str | None:
    """What `/ready` reports about the schema's indexes, or None when all are valid."""
    broken = await invalid_indexes(conn)
    if not broken:
        return None
    return f"INVALID index: {', '.join(broken)}; run `herald migrate` to rebuild it"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def repair(conn: AsyncConnection) -> list[str]:
    """Rebuild every INVALID index, drop what failed rebuilds left; return the names of the
    indexes still INVALID afterwards.

    Runs between transactions (concurrent builds cannot run inside one) and takes no lock
    that blocks writes: Herald keeps serving while it runs."""
    broken = await invalid_indexes(conn)
    await conn.commit()
    if not broken:
        return []
    auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
    # Copies first, so a rebuild does not pile a second copy beside the first.
    for name in [n for n in broken if _LEFTOVER.search(n)]:
        log.warning("migrate: dropping %s, left INVALID by an interrupted rebuild", name)
        await _try(auto, f"DROP INDEX CONCURRENTLY IF EXISTS {_quoted(name)}", name)
    for name in [n for n in broken if not _LEFTOVER.search(n)]:
        log.warning(
            "migrate: index %s is INVALID (an interrupted concurrent build); rebuilding", name
        )
        if not await _try(auto, f"REINDEX INDEX CONCURRENTLY {_quoted(name)}", name):
            # A failed rebuild leaves its own copy (`<name>_ccnew`): remove it again.
            for copy in await invalid_indexes(auto):
                if _LEFTOVER.search(copy) and copy.startswith(name):
                    await _try(auto, f"DROP INDEX CONCURRENTLY IF EXISTS {_quoted(copy)}", copy)
    return await invalid_indexes(auto)


async def _try(conn: AsyncConnection, statement: str, name: str) -> bool:
    try:
        await conn.execute(text(statement))
    except DBAPIError as exc:
        log.error("migrate: could not repair index %s: %s", name, exc.orig)
        return False
    return True
