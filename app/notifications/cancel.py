"""Cancelling what a send has not delivered yet, by its workflow cancellation key."""

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.timefmt import utcnow
from app.notifications.models import NotificationRequest
from app.users import repository as users_repository

PENDING = ("queued", "scheduled", "fanning_out")


async def cancel_run(
    session: AsyncSession,
    *,
    app_id: int,
    workflow: str,
    cancellation_key: str,
    recipients: list[str] | None,
) -> int:
    """Cancel pending sends with this key (for everyone, or for the named recipients);
    return how many sends were affected. Inbox rows already written stay."""
    requests = list(
        await session.scalars(
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
    )
    excluded: list[int] = []
    if recipients is not None:
        excluded = list((await users_repository.ids_of(session, app_id, recipients)).values())
    for request in requests:
        if recipients is None:
            request.status = "cancelled"
        else:
            request.cancelled_user_ids = sorted({*request.cancelled_user_ids, *excluded})
        request.updated_at = utcnow()
    await session.flush()
    return len(requests)
