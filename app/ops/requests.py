"""A send's status for `herald requests show`, as GET /admin/apps/{id}/requests/{id} has it.

Read here rather than through the admin router: nothing imports a router but main.py."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.timefmt import iso
from app.notifications.models import Notification, NotificationRequest
from app.notifications.schemas import RequestStatus


async def request_status(
    session: AsyncSession, *, app_id: int, request_id: uuid.UUID
) -> RequestStatus | None:
    request = await session.scalar(
        select(NotificationRequest).where(
            NotificationRequest.app_id == app_id, NotificationRequest.id == request_id
        )
    )
    if request is None:
        return None
    delivered = await session.scalar(
        select(func.count()).where(Notification.request_id == request.id)
    )
    return RequestStatus(
        requestId=str(request.id),
        status=request.status,
        createdAt=iso(request.created_at),
        updatedAt=iso(request.updated_at),
        sendAt=iso(request.send_at),
        recipients=request.recipient_count,
        topics=list(request.topic_ids),
        delivered=int(delivered or 0),
        attempts=request.attempts,
        error=request.error,
        cancellationKey=request.cancellation_key,
    )
