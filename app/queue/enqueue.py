"""Enqueue jobs inside the caller's transaction, so a job exists exactly when its data does."""

import json
from datetime import datetime, timedelta
from typing import Any

from pgqueuer.adapters.persistence.qb import QueryQueueBuilder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ENQUEUE = QueryQueueBuilder().build_enqueue_query("raise")
# PgQueuer runs a job at the transaction's now() plus its delay: measure the delay on that
# clock, or a job meant for `not_before` becomes due as early as the transaction began.
_DELAY_UNTIL = text("SELECT greatest(CAST(:at AS timestamptz) - now(), interval '0')")


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: dict[str, Any],
    *,
    not_before: datetime | None = None,
    priority: int = 0,
) -> None:
    """Insert a PgQueuer job through the session's own connection and transaction.

    PgQueuer's insert trigger NOTIFYs the workers, and NOTIFY is delivered on commit:
    a rolled-back send leaves neither a job nor a wake-up behind."""
    conn = await session.connection()
    delay = timedelta(0)
    if not_before is not None:
        delay = await conn.scalar(_DELAY_UNTIL, {"at": not_before})
    await conn.exec_driver_sql(
        _ENQUEUE,
        (
            [priority],
            [entrypoint],
            [json.dumps(payload).encode()],
            [delay],
            [None],
            [json.dumps({})],
        ),
    )


async def enqueue_many(
    session: AsyncSession, entrypoint: str, payloads: list[dict[str, Any]], *, priority: int = 0
) -> None:
    """Insert one job per payload, due now, in one statement through the session's transaction."""
    if not payloads:
        return
    conn = await session.connection()
    n = len(payloads)
    await conn.exec_driver_sql(
        _ENQUEUE,
        (
            [priority] * n,
            [entrypoint] * n,
            [json.dumps(p).encode() for p in payloads],
            [timedelta(0)] * n,
            [None] * n,
            [json.dumps({})] * n,
        ),
    )
