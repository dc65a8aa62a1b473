from fastapi import APIRouter

from app.auth.dependencies import InboxUser
from app.db import SessionDep
from app.preferences import service
from app.preferences.schemas import PreferenceRead, PreferencesUpdate

router = APIRouter(tags=["preferences"])


@router.get("/preferences", response_model=list[PreferenceRead])
async def get_preferences(session: SessionDep, principal: InboxUser) -> list[PreferenceRead]:
    """List the user's explicit rules; a channel not listed is enabled."""
    return await service.read(
        session, app_id=principal.app.id, identifier=principal.user_identifier
    )


@router.patch("/preferences", response_model=list[PreferenceRead])
async def update_preferences(
    session: SessionDep, principal: InboxUser, body: PreferencesUpdate
) -> list[PreferenceRead]:
    """Merge rules per (category, channel); rules not named are kept."""
    return await service.update(
        session, app_id=principal.app.id, identifier=principal.user_identifier, body=body
    )
