"""Enqueue jobs inside the caller's transaction, so a job exists exactly when its data does."""

import json
from datetime import timedelta
from typing import Any

from pgqueuer.adapters.persistence.qb import QueryQueueBuilder
from sqlalchemy.ext.asyncio import AsyncSession

_ENQUEUE = QueryQueueBuilder().build_enqueue_query("raise")


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: dict[str, Any],
    *,
    delay: timedelta | None = None,
    priority: int = 0,
) -> None:
    """Insert a PgQueuer job through the session's own connection and transaction.

    PgQueuer's insert trigger NOTIFYs the workers, and NOTIFY is delivered on commit:
    a rolled-back send leaves neither a job nor a wake-up behind."""
    conn = await session.connection()
    await conn.exec_driver_sql(
        _ENQUEUE,
        (
            [priority],
            [entrypoint],
            [json.dumps(payload).encode()],
            [delay or timedelta(0)],
            [None],
            [json.dumps({})],
        ),
    )
