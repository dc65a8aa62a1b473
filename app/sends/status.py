"""What the admin API says about a send: its state and what it has delivered so far."""

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import repository as delivery_repository
from app.inbox import repository as inbox_repository
from app.kit.timefmt import iso
from app.sends import repository
from app.sends.models import NotificationRequest
from app.sends.schemas import RequestStatus


async def describe(
    session: AsyncSession, requests: Sequence[NotificationRequest]
) -> list[RequestStatus]:
    """Describe requests with their inbox counts and their other channels' deliveries by
    channel and status, in two queries for all of them."""
    ids = [r.id for r in requests]
    delivered = await inbox_repository.counts_by_request(session, ids)
    channels = await delivery_repository.counts_by_request(session, ids)
    return [
        RequestStatus(
            requestId=str(r.id),
            status=r.status,
            createdAt=iso(r.created_at),
            updatedAt=iso(r.updated_at),
            sendAt=iso(r.send_at),
            recipients=r.recipient_count,
            topics=list(r.topic_ids),
            delivered=delivered.get(r.id, 0),
            deliveries=channels.get(r.id, {}),
            attempts=r.attempts,
            error=r.error,
            cancellationKey=r.cancellation_key,
        )
        for r in requests
    ]


async def of_request(
    session: AsyncSession, *, app_id: int, request_id: uuid.UUID
) -> RequestStatus | None:
    """One send of the app, described; None when the app has no such send."""
    request = await repository.of_app(session, app_id, request_id)
    return None if request is None else (await describe(session, [request]))[0]
