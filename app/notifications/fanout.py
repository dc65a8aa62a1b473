"""The worker's side of a send: reach every recipient in batches, resumably."""

import uuid
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.timefmt import utcnow
from app.notifications import events, repository
from app.notifications.models import NotificationRequest
from app.notifications.schemas import SendRequest
from app.notifications.send import inbox_content

FINISHED = ("done", "cancelled", "failed")

# The next batch after the cursor: explicit users and topic subscribers, each user once.
# A subscriber gets the inbox row when any subscription that reaches them allows inApp
# (or names no channels).
#
# Each source contributes only its first :batch users after the cursor, read in order from
# an index (for a topic, the primary key (topic_id, user_id); the row comparison keeps the
# planner off the user_id index, which would walk every topic's subscriptions), so a batch
# costs O(batch * sources), not O(subscribers left): the first :batch users of the union are
# among them, and so is every row that reaches each of those users (bool_or stays exact).
_NEXT_BATCH = text(
    """
    SELECT user_id, bool_or(inbox) AS inbox
    FROM (
        (SELECT u AS user_id, true AS inbox
         FROM unnest(CAST(:user_ids AS bigint[])) AS u
         WHERE u > :cursor
         ORDER BY u
         LIMIT :batch)
        UNION ALL
        SELECT s.user_id, s.inbox
        FROM unnest(CAST(:topic_ids AS bigint[])) AS t(topic_id)
        CROSS JOIN LATERAL (
            SELECT s.user_id,
                   (jsonb_array_length(s.channels) = 0 OR s.channels ? 'inApp') AS inbox
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


@dataclass(frozen=True)
class Progress:
    done: bool
    written: int


async def run_batch(session: AsyncSession, request_id: uuid.UUID, *, batch: int) -> Progress:
    """Write the next batch of inbox rows for a request and move its cursor, atomically.

    The request row is locked, so two workers never interleave on one send; a worker
    killed mid-batch rolls back and the next one starts from the same cursor."""
    request = await session.scalar(
        select(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if request is None or request.status in FINISHED:
        return Progress(done=True, written=0)
    rows = (
        await session.execute(
            _NEXT_BATCH,
            {
                "user_ids": request.user_ids,
                "topic_ids": request.topic_ids,
                "cursor": request.cursor,
                "batch": batch,
            },
        )
    ).all()
    now = utcnow()
    request.updated_at = now
    if not rows:
        request.status = "done"
        await session.flush()
        return Progress(done=True, written=0)

    cancelled = set(request.cancelled_user_ids)
    targets = [user_id for user_id, inbox in rows if inbox and user_id not in cancelled]
    body = SendRequest.model_validate(request.payload)
    written = await repository.fan_out(
        session,
        app_id=request.app_id,
        request_id=request.id,
        user_ids=targets,
        content=inbox_content(body, request.category_id),
        created_at=now,
    )
    await events.publish(session, "NEW_NOTIFICATION", written)
    request.cursor = rows[-1][0]
    request.status = "fanning_out"
    await session.flush()
    return Progress(done=False, written=len(written))


async def record_failure(
    session: AsyncSession, request_id: uuid.UUID, *, error: str, final: bool
) -> None:
    request = await session.get(NotificationRequest, request_id, with_for_update=True)
    if request is None:
        return
    request.attempts += 1
    request.error = error[:2000]
    request.updated_at = utcnow()
    if final:
        request.status = "failed"
    await session.flush()
