"""The worker's side of a send: reach every recipient in batches, resumably."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app import routing
from app.apps import repository as apps_repository
from app.kit.timefmt import utcnow
from app.sends import repository
from app.sends.accept import channels_of, deliver
from app.sends.models import SendStatus
from app.sends.schemas import SendRequest


@dataclass(frozen=True)
class Progress:
    done: bool
    written: int


async def run_batch(
    session: AsyncSession, request_id: uuid.UUID, *, batch: int, web_push: bool = False
) -> Progress:
    """Deliver the next batch of a request and move its cursor, atomically (`web_push`: this
    worker can sign web push, HERALD_VAPID_SUBJECT is set).

    The request row is locked, so two workers never interleave on one send; a worker
    killed mid-batch rolls back and the next one starts from the same cursor."""
    request = await repository.locked(session, request_id)
    if request is None or not request.status.pending:
        return Progress(done=True, written=0)
    rows = await repository.next_batch(session, request, batch=batch)
    now = utcnow()
    request.updated_at = now
    if not rows:
        request.status = SendStatus.DONE
        await session.flush()
        return Progress(done=True, written=0)

    app = await apps_repository.by_id(session, request.app_id)
    body = SendRequest.model_validate(request.payload)
    cancelled = set(request.cancelled_user_ids)
    routes = await routing.route(
        session,
        channels=await channels_of(session, app, body, web_push=web_push) if app else (),
        category_id=request.category_id,
        reached=[routing.reach_of(u, lists) for u, lists in rows if u not in cancelled],
    )
    written = await deliver(session, request, body, routes, created_at=now)
    request.cursor = rows[-1][0]
    request.status = SendStatus.FANNING_OUT
    await session.flush()
    return Progress(done=False, written=written)


async def record_failure(
    session: AsyncSession, request_id: uuid.UUID, *, error: str, final: bool
) -> None:
    request = await repository.locked(session, request_id)
    if request is None:
        return
    request.attempts += 1
    request.error = error[:2000]
    request.updated_at = utcnow()
    if final:
        request.status = SendStatus.FAILED
    await session.flush()
