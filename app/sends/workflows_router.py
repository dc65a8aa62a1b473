from typing import Annotated

from fastapi import APIRouter, Path

from app.auth.dependencies import BackendApp
from app.db import SessionDep
from app.kit.types import Identifier
from app.sends import cancel
from app.sends.schemas import Cancelled, CancelRun

router = APIRouter(tags=["workflows"])
Workflow = Annotated[Identifier, Path()]


@router.patch("/workflows/{identifier}/cancel-run", response_model=Cancelled)
@router.post("/workflows/{identifier}/cancel-run", response_model=Cancelled)
@router.patch("/workflows/{identifier}", response_model=Cancelled)
async def cancel_workflow_run(
    session: SessionDep, principal: BackendApp, identifier: Workflow, body: CancelRun
) -> Cancelled:
    """Cancel what sends with this `cancellationKey` have not delivered yet (scheduled sends,
    topic fan-outs in progress), for everyone or for `cancelFor.recipients`."""
    n = await cancel.cancel_run(
        session,
        app_id=principal.app.id,
        workflow=identifier,
        cancellation_key=body.cancellationKey,
        recipients=list(body.cancelFor.recipients) if body.cancelFor else None,
    )
    return Cancelled(message=f"{n} runs cancelled", cancelled=n)
