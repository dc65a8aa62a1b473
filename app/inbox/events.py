"""Inbox events, published through PostgreSQL NOTIFY inside the writing transaction (the
group commit of plain sends notifies just after its commit instead: app/sends/group.py).

NOTIFY is transactional: listeners hear an event only if the change committed, and never for
one that rolled back. Payloads stay small (ids only); each process loads what it emits."""

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "herald_events"
# NOTIFY payloads must stay under 8000 bytes: at most this many (user, id) pairs each.
PAIRS_PER_MESSAGE = 300

Event = Literal[
    "NEW_NOTIFICATION",
    "NOTIFICATION_DELETED",
    "ALL_NOTIFICATION_DELETED",
    "NOTIFICATION_READ",
    "ALL_NOTIFICATION_READ",
    # One item seen or unseen; name it (the 1.x SDKs read its id).
    "NOTIFICATION_SEEN",
    "NOTIFICATION_INTERACTED",
    # The unseen count changed in bulk (a page seen, all read, all deleted): the 1.x SDKs
    # take it as "all seen".
    "NOTIFICATION_UNREAD_COUNT",
]

_NOTIFY = text(
    "SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload"
)
# The same, on the driver's connection (publish_payloads).
_NOTIFY_DRIVER = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"


def messages(event: Event, pairs: Sequence[tuple[int, int | None]]) -> list[str]:
    """Encode (user id, notification id or None) pairs as NOTIFY payloads."""
    out: list[str] = []
    for start in range(0, len(pairs), PAIRS_PER_MESSAGE):
        chunk = pairs[start : start + PAIRS_PER_MESSAGE]
        out.append(json.dumps({"e": event, "p": [list(p) for p in chunk]}, separators=(",", ":")))
    return out


def decode(payload: str) -> tuple[Event, list[tuple[int, int | None]]]:
    data: dict[str, Any] = json.loads(payload)
    return data["e"], [(int(u), None if n is None else int(n)) for u, n in data["p"]]


async def publish(
    session: AsyncSession, event: Event, pairs: Iterable[tuple[int, int | None]]
) -> None:
    listed = list(pairs)
    if listed:
        await session.execute(_NOTIFY, {"channel": CHANNEL, "payloads": messages(event, listed)})


async def publish_payloads(connection: asyncpg.Connection, payloads: Sequence[str]) -> None:
    """NOTIFY payloads made already, in the shape of `messages` (the group commit's function
    returns them), in a transaction of their own when the connection is in none: one that
    writes nothing, so its commit waits for no WAL flush."""
    if payloads:
        await connection.execute(_NOTIFY_DRIVER, CHANNEL, list(payloads))
