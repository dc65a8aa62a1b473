from typing import Annotated

from fastapi import APIRouter, Path

from app.auth.dependencies import InboxUser
from app.db import SessionDep
from app.devices import repository
from app.devices.schemas import DeviceId, WebPushSubscription
from app.users import service as users_service
from app.users.schemas import Message

router = APIRouter(tags=["devices"])


@router.post("/devices/{device_id}/webPushSubscription", response_model=Message)
async def save_web_push_subscription(
    session: SessionDep,
    principal: InboxUser,
    device_id: Annotated[DeviceId, Path()],
    body: WebPushSubscription,
) -> Message:
    """Store the browser's web-push subscription for this user's device."""
    user = await users_service.locked(
        session, app_id=principal.app.id, identifier=principal.user_identifier
    )
    await repository.register(
        session,
        user_id=user.id,
        device_identifier=device_id,
        device_type="browser",
        web_push_subscription=body.model_dump(mode="json"),
    )
    return Message(message="Web push subscription saved")
