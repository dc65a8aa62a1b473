import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.dependencies import AdminDep
from app.db import SessionDep
from app.errors import NotFound
from app.kit.types import DbId
from app.sends import repository, status
from app.sends.models import SendStatus
from app.sends.schemas import RequestStatus

router = APIRouter(prefix="/admin/apps/{app_id}/requests", tags=["admin"], dependencies=[AdminDep])


@router.get("/{request_id}", response_model=RequestStatus)
async def get_request(session: SessionDep, app_id: DbId, request_id: uuid.UUID) -> RequestStatus:
    """Show a send's state (queued, scheduled, fanning_out, done, cancelled, failed) and counts."""
    found = await status.of_request(session, app_id=app_id, request_id=request_id)
    if found is None:
        raise NotFound("Request not found")
    return found


@router.get("", response_model=list[RequestStatus])
async def list_requests(
    session: SessionDep,
    app_id: DbId,
    state: Annotated[SendStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[RequestStatus]:
    """List an app's most recent sends, e.g. `?status=failed` for the ones that gave up."""
    requests = await repository.recent(session, app_id, status=state, limit=limit)
    return await status.describe(session, requests)
