from fastapi import APIRouter, Request

from app.auth.dependencies import InboxUser
from app.categories import repository as categories_repository
from app.categories.schemas import CategoryRead
from app.config import SettingsDep
from app.db import SessionDep
from app.delivery import service as delivery_service
from app.devices import repository as devices_repository
from app.errors import BadRequest
from app.inbox import service as inbox_service
from app.kit.bodies import optional_object
from app.sdk.schemas import Connected, ConnectedApp
from app.users import service as users_service

router = APIRouter(tags=["sdk"])


def _short(body: dict[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 32:
        raise BadRequest(f"{key} must be a string of at most 32 characters")
    return value


@router.post("/sdk/connect", response_model=Connected)
async def connect(
    request: Request, session: SessionDep, settings: SettingsDep, principal: InboxUser
) -> Connected:
    """Identify the user (created if new), register the device, and describe the app."""
    body = await optional_object(request)
    device_type, browser_type = _short(body, "deviceType"), _short(body, "browserType")
    device_id = request.headers.get("x-engagespot-device-id", "").strip()
    if len(device_id) > 255:
        raise BadRequest("X-ENGAGESPOT-DEVICE-ID must be at most 255 characters")
    user = await users_service.locked(
        session, app_id=principal.app.id, identifier=principal.user_identifier
    )
    if device_id:
        await devices_repository.register(
            session,
            user_id=user.id,
            device_identifier=device_id,
            device_type=device_type,
            browser_type=browser_type,
        )
    app = principal.app
    categories = await categories_repository.list_for_app(session, app.id)
    channels = await delivery_service.enabled_channels(
        session,
        app_channels=list(app.channels),
        app_id=app.id,
        web_push=settings.vapid_subject is not None,
    )
    return Connected(
        unreadCount=await inbox_service.unread_count(session, user_id=user.id),
        app=ConnectedApp(
            id=app.id,
            name=app.name,
            publicKey=app.vapid_public_key,
            # @engagespot/core asks for permission and subscribes only when this is true.
            enableWebPush="webPush" in channels,
            hideBranding=True,
            channels=channels,
            categories=[CategoryRead.of(c) for c in categories],
        ),
    )
