"""SQL for send requests and idempotency keys; every lookup is scoped to one app."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import cast, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.sends.models import IdempotencyKey, NotificationRequest, SendStatus
from app.users.repository import EMAIL_LIKE

PENDING = (SendStatus.QUEUED, SendStatus.SCHEDULED, SendStatus.FANNING_OUT)


async def add(session: AsyncSession, request: NotificationRequest) -> None:
    session.add(request)
    await session.flush()


async def of_app(
    session: AsyncSession, app_id: int, request_id: uuid.UUID
) -> NotificationRequest | None:
    return await session.scalar(
        select(NotificationRequest).where(
            NotificationRequest.app_id == app_id, NotificationRequest.id == request_id
        )
    )


async def recent(
    session: AsyncSession, app_id: int, *, status: SendStatus | None, limit: int
) -> list[NotificationRequest]:
    query = select(NotificationRequest).where(NotificationRequest.app_id == app_id)
    if status is not None:
        query = query.where(NotificationRequest.status == status)
    rows = await session.scalars(query.order_by(NotificationRequest.created_at.desc()).limit(limit))
    return list(rows)


async def locked(session: AsyncSession, request_id: uuid.UUID) -> NotificationRequest | None:
    """The request, locked until the transaction ends and read fresh (not from the session)."""
    return await session.scalar(
        select(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def pending_with_key(
    session: AsyncSession, *, app_id: int, cancellation_key: str, workflow: str
) -> list[NotificationRequest]:
    """Locked pending requests carrying this cancellation key (for this workflow or none)."""
    rows = await session.scalars(
        select(NotificationRequest)
        .where(
            NotificationRequest.app_id == app_id,
            NotificationRequest.cancellation_key == cancellation_key,
            NotificationRequest.status.in_(PENDING),
            or_(
                NotificationRequest.workflow_identifier.is_(None),
                NotificationRequest.workflow_identifier == workflow,
            ),
        )
        .with_for_update()
    )
    return list(rows)


# The next batch after the cursor: explicit users and topic subscribers, each user once,
# with the channel lists of the subscriptions that reached them (NULL: every channel; an
# explicit recipient allows every channel, and so does a subscription naming none).
#
# Each source contributes only its first :batch users after the cursor, read in order from
# an index (for a topic, the primary key (topic_id, user_id); the row comparison keeps the
# planner off the user_id index, which would walk every topic's subscriptions), so a batch
# costs O(batch * sources), not O(subscribers left): the first :batch users of the union are
# among them, and so is every row that reaches each of those users.
_NEXT_BATCH = text(
    """
    SELECT user_id,
           bool_or(channels IS NULL) AS every_channel,
           jsonb_agg(channels) FILTER (WHERE channels IS NOT NULL) AS channel_lists
    FROM (
        (SELECT u AS user_id, CAST(NULL AS jsonb) AS channels
         FROM unnest(CAST(:user_ids AS bigint[])) AS u
         WHERE u > :cursor
         ORDER BY u
         LIMIT :batch)
        UNION ALL
        SELECT s.user_id, s.channels
        FROM unnest(CAST(:topic_ids AS bigint[])) AS t(topic_id)
        CROSS JOIN LATERAL (
            SELECT s.user_id,
                   CASE WHEN jsonb_array_length(s.channels) = 0 THEN NULL
                        ELSE s.channels END AS channels
            FROM topic_subscriptions s
            WHERE s.topic_id = t.topic_id
              AND (s.topic_id, s.user_id) > (t.topic_id, CAST(:cursor AS bigint))
            ORDER BY s.topic_id, s.user_id
            LIMIT :batch
        ) AS s
    ) AS targets
    GROUP BY user_id
    ORDER BY user_id
    LIMIT :batch
    """
)


async def next_batch(
    session: AsyncSession, request: NotificationRequest, *, batch: int
) -> list[tuple[int, list[list[str]] | None]]:
    """Up to `batch` users after the request's cursor, in id order, each with the channel
    lists of the sources that reached them (None: a source allows every channel)."""
    rows = await session.execute(
        _NEXT_BATCH,
        {
            "user_ids": request.user_ids,
            "topic_ids": request.topic_ids,
            "cursor": request.cursor,
            "batch": batch,
        },
    )
    return [(user_id, None if every else lists) for user_id, every, lists in rows]


async def claim_key(
    session: AsyncSession, *, app_id: int, key: str, fingerprint: str, wait: str
) -> IdempotencyKey | None:
    """Insert the key, or return the existing row locked: waiting at most `wait` for a
    concurrent first attempt (lock_timeout, SQLSTATE 55P03 when it runs out)."""
    await session.execute(_LOCK_TIMEOUT, {"value": wait})
    owned = await session.scalar(
        insert(IdempotencyKey)
        .values(app_id=app_id, key=key, fingerprint=fingerprint)
        .on_conflict_do_nothing(index_elements=["app_id", "key"])
        .returning(IdempotencyKey.key)
    )
    existing = (
        None
        if owned is not None
        else await session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.app_id == app_id, IdempotencyKey.key == key)
            .with_for_update()
        )
    )
    await session.execute(_LOCK_TIMEOUT, {"value": "0"})
    return existing


_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :value, true)")


async def restart_key(
    session: AsyncSession, key: IdempotencyKey, *, fingerprint: str, now: datetime
) -> None:
    key.fingerprint = fingerprint
    key.request_id = None
    key.created_at = now
    await session.flush()


async def remember_key(
    session: AsyncSession, *, app_id: int, key: str, request_id: uuid.UUID
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.app_id == app_id, IdempotencyKey.key == key)
        .values(request_id=request_id)
    )


async def copy_imported(
    session: AsyncSession, *, app_id: int, requests: Sequence[tuple[uuid.UUID, int, datetime]]
) -> None:
    """Bulk-load finished send requests for imported history: (id, recipients, created_at)."""
    if not requests:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "notification_requests",
        records=[(rid, app_id, _IMPORTED, n, "done", at, at) for rid, n, at in requests],
        columns=[
            "id",
            "app_id",
            "payload",
            "recipient_count",
            "status",
            "created_at",
            "updated_at",
        ],
    )


_IMPORTED = '{"imported": true}'


async def apps_of(session: AsyncSession, request_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """request id -> app id, for those of `request_ids` that exist."""
    if not request_ids:
        return {}
    rows = await session.execute(
        select(NotificationRequest.id, NotificationRequest.app_id).where(
            NotificationRequest.id == func.any(cast(list(request_ids), ARRAY(UUID(as_uuid=True))))
        )
    )
    return {request_id: app_id for request_id, app_id in rows}


class GroupRequest(NamedTuple):
    """A request row of a group commit (app/sends/group.py): finished when written."""

    id: uuid.UUID
    app_id: int
    payload: str  # JSON text
    recipient_count: int
    cancellation_key: str | None
    workflow_identifier: str | None
    created_at: datetime


# One call of the function migration 0017 defines: one round trip, committed on return when
# the connection is in no transaction (db.autocommitting).
_WRITE_SEND_GROUP = """
    SELECT write_send_group($1::uuid[], $2::bigint[], $3::text[], $4::integer[], $5::text[],
                            $6::text[], $7::timestamptz[], $8::bigint[], $9::text[], $10,
                            $11::bigint[], $12::text[], $13::uuid[], $14::text[], $15::text[],
                            $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                            $21::timestamptz[], $22, $23)
"""


async def write_group(
    connection: asyncpg.Connection,
    *,
    requests: Sequence[GroupRequest],
    recipients: Sequence[tuple[Any, ...]],
    event: tuple[str, int],
) -> list[str]:
    """Write finished requests, their users and their inbox rows; return the NOTIFY
    payloads of what was written, for `events.publish_payloads` once the rows are committed.
    `recipients`: (app id, identifier, request id, title, message, icon, url, data JSON,
    blocks JSON, tenant, created_at) per inbox row; `event`: (event name, pairs per message)
    of the payloads.

    On the driver's connection: through a session a group cost the server more than
    writing its rows did."""
    users = sorted({(r[0], r[1]) for r in recipients})
    columns = list(zip(*recipients, strict=True)) if recipients else [()] * 11
    payloads: list[str] = await connection.fetchval(
        _WRITE_SEND_GROUP,
        [r.id for r in requests],
        [r.app_id for r in requests],
        [r.payload for r in requests],
        [r.recipient_count for r in requests],
        [r.cancellation_key for r in requests],
        [r.workflow_identifier for r in requests],
        [r.created_at for r in requests],
        [a for a, _ in users],
        [i for _, i in users],
        EMAIL_LIKE,
        *(list(column) for column in columns),
        *event,
    )
    return payloads
