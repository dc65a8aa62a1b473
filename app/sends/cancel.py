"""Cancelling what a send has not delivered yet, by its workflow cancellation key."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.timefmt import utcnow
from app.sends import repository
from app.sends.models import SendStatus
from app.users import repository as users_repository


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
    requests = await repository.pending_with_key(
        session, app_id=app_id, cancellation_key=cancellation_key, workflow=workflow
    )
    excluded: list[int] = []
    if recipients is not None:
        excluded = list((await users_repository.ids_of(session, app_id, recipients)).values())
    for request in requests:
        if recipients is None:
            request.status = SendStatus.CANCELLED
        else:
            request.cancelled_user_ids = sorted({*request.cancelled_user_ids, *excluded})
        request.updated_at = utcnow()
    await session.flush()
    return len(requests)
