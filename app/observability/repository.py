"""The statements behind /metrics and /ready: the queue table and Alembic's revision."""

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.observability.metrics import QueueRow

# A scrape must stay cheap while a backlog builds: bounded on the server side as well.
_TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")
_QUEUE = text(
    """
    SELECT entrypoint,
           CASE WHEN status = 'picked' THEN 'running'
                WHEN status = 'queued' AND execute_after <= now() THEN 'waiting'
                WHEN status = 'queued' THEN 'scheduled'
                ELSE status::text END AS state,
           count(*) AS jobs,
           coalesce(extract(epoch FROM now() - min(execute_after)), 0) AS oldest
      FROM pgqueuer
     GROUP BY 1, 2
    """
)
_REVISIONS = text("SELECT version_num FROM alembic_version")


async def queue_rows(session: AsyncSession, *, timeout_ms: int) -> list[QueueRow]:
    await session.execute(_TIMEOUT, {"ms": str(timeout_ms)})
    result = await session.execute(_QUEUE)
    return [QueueRow(e, s, int(n), float(age)) for e, s, n, age in result]


async def schema_revisions(conn: AsyncConnection) -> list[str]:
    """The revisions Alembic recorded as applied; none when it never ran here."""
    try:
        result = await conn.execute(_REVISIONS)
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P01":  # undefined_table
            return []
        raise
    return sorted(str(r) for (r,) in result)
