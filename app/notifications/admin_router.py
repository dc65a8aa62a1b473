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


async def _status(session: AsyncSession, request: NotificationRequest) -> RequestStatus:
    delivered = await session.scalar(
        select(func.count()).select_from(Notification).where(Notification.request_id == request.id)
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
    return await _status(session, request)


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
    return [await _status(session, r) for r in requests]
