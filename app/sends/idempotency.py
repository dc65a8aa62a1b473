"""`Idempotency-Key` on send: the first successful answer is the answer for 24 hours.

The key row is inserted in the send's own transaction. A concurrent retry's insert waits on
that row's unique index until the first transaction ends: it then reads the stored answer
(commit) or takes the key over (rollback). Only successful sends are remembered, because a
failed one rolls its key back with everything else."""

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, Conflict, Unprocessable
from app.kit.timefmt import utcnow
from app.sends import repository

TTL = timedelta(hours=24)
WAIT = "5s"  # how long a retry waits for the first attempt before answering 409
LOCK_NOT_AVAILABLE = "55P03"


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    session: AsyncSession, *, app_id: int, key: str, body: dict[str, Any]
) -> uuid.UUID | None:
    """Return the request id of an earlier identical send, or None when this send owns the key."""
    digest = fingerprint(body)
    try:
        existing = await repository.claim_key(
            session, app_id=app_id, key=key, fingerprint=digest, wait=WAIT
        )
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise _busy() from exc
        raise
    if existing is None:
        return None
    now = utcnow()
    if existing.created_at < now - TTL:
        await repository.restart_key(session, existing, fingerprint=digest, now=now)
        return None
    if existing.fingerprint != digest:
        raise Unprocessable("Idempotency-Key was already used with a different request body")
    if existing.request_id is None:
        raise _busy()
    return existing.request_id


async def remember(session: AsyncSession, *, app_id: int, key: str, request_id: uuid.UUID) -> None:
    await repository.remember_key(session, app_id=app_id, key=key, request_id=request_id)


def _busy() -> AppError:
    return Conflict(
        "A request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )
