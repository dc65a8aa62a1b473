import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import AdminDep
from app.db import SessionDep
from app.errors import NotFound
from app.kit.timefmt import iso
from app.kit.types import DbId
from app.notifications.models import Notification, NotificationRequest
from app.notifications.schemas import RequestStatus

router = APIRouter(prefix="/admin/apps/{app_id}/requests", tags=["admin"], dependencies=[AdminDep])

Status = Literal["queued", "scheduled", "fanning_out", "done", "cancelled", "failed"]


async def _statuses(
    session: AsyncSession, requests: list[NotificationRequest]
) -> list[RequestStatus]:
    """Describe requests with their delivered counts, in one query for all of them."""
    delivered: dict[uuid.UUID, int] = {}
    if requests:
        rows = await session.execute(
            select(Notification.request_id, func.count())
            .where(Notification.request_id.in_([r.id for r in requests]))
            .group_by(Notification.request_id)
        )
        delivered = {request_id: count for request_id, count in rows}
    return [
        RequestStatus(
            requestId=str(r.id),
            status=r.status,
            createdAt=iso(r.created_at),
            updatedAt=iso(r.updated_at),
            sendAt=iso(r.send_at),
            recipients=r.recipient_count,
            topics=list(r.topic_ids),
            delivered=int(delivered.get(r.id, 0)),
            attempts=r.attempts,
            error=r.error,
            cancellationKey=r.cancellation_key,
        )
        for r in requests
    ]


@router.get("/{request_id}", response_model=RequestStatus)
async def get_request(session: SessionDep, app_id: DbId, request_id: uuid.UUID) -> RequestStatus:
    """Show a send's state (queued, scheduled, fanning_out, done, cancelled, failed) and counts."""
    request = await session.scalar(
        select(NotificationRequest).where(
            NotificationRequest.app_id == app_id, NotificationRequest.id == request_id
        )
    )
    if request is None:
        raise NotFound("Request not found")
    return (await _statuses(session, [request]))[0]


@router.get("", response_model=list[RequestStatus])
async def list_requests(
    session: SessionDep,
    app_id: DbId,
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[RequestStatus]:
    """List an app's most recent sends, e.g. `?status=failed` for the ones that gave up."""
    query = select(NotificationRequest).where(NotificationRequest.app_id == app_id)
    if status is not None:
        query = query.where(NotificationRequest.status == status)
    requests = await session.scalars(
        query.order_by(NotificationRequest.created_at.desc()).limit(limit)
    )
    return await _statuses(session, list(requests))
