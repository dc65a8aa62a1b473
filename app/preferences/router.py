from typing import Annotated

from fastapi import APIRouter, Body

from app.auth.dependencies import InboxUser
from app.db import SessionDep
from app.errors import answers
from app.preferences import service
from app.preferences.schemas import PreferenceRead, PreferencesUpdate

router = APIRouter(tags=["preferences"])

# A category id exists only in its app: the default example changes nothing, so it succeeds
# as sent from "Try it out"; the second shows the shape with an id from GET /v3/categories.
EXAMPLES = {
    "unchanged": {"summary": "Change nothing", "value": {"preference": []}},
    "one category": {
        "summary": "Turn email off for a category (use an id from GET /v3/categories)",
        "value": {
            "preference": [{"categoryId": 1, "channels": [{"channel": "email", "enabled": False}]}]
        },
    },
}


@router.get("/preferences", response_model=list[PreferenceRead])
async def get_preferences(session: SessionDep, principal: InboxUser) -> list[PreferenceRead]:
    """List the user's explicit rules; a channel not listed is enabled."""
    return await service.read(
        session, app_id=principal.app.id, identifier=principal.user_identifier
    )


# 404: a categoryId the app does not have.
@router.patch("/preferences", response_model=list[PreferenceRead], responses=answers(404))
async def update_preferences(
    session: SessionDep,
    principal: InboxUser,
    body: Annotated[PreferencesUpdate, Body(openapi_examples=EXAMPLES)],
) -> list[PreferenceRead]:
    """Merge rules per (category, channel); rules not named are kept."""
    return await service.update(
        session, app_id=principal.app.id, identifier=principal.user_identifier, body=body
    )
