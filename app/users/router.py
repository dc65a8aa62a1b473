from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from app.auth.dependencies import BackendApp, InboxUser
from app.auth.principal import UserPrincipal, Via
from app.db import SessionDep
from app.errors import NotFound, answers
from app.users import repository, service
from app.users.schemas import Message, UserCreate, UserRead

router = APIRouter(tags=["users"])

ProfileBody = Annotated[
    dict[str, Any] | None, Body(examples=[{"name": "Alice", "email": "alice@example.com"}])
]
# A profile may not hold `identifier`: a 422, as Engagespot answers.
NO_IDENTIFIER = answers(422)


@router.post("/users", response_model=UserRead, responses=NO_IDENTIFIER)
async def create_user(session: SessionDep, principal: BackendApp, body: UserCreate) -> UserRead:
    """Create a user, or merge the given profile into an existing one."""
    user = await service.merge_profile(
        session, app_id=principal.app.id, identifier=body.identifier, changes=body.profile
    )
    return UserRead.of(user)


@router.put("/users/{identifier}", response_model=UserRead, responses=NO_IDENTIFIER)
async def put_user(
    session: SessionDep, principal: BackendApp, identifier: str, body: ProfileBody = None
) -> UserRead:
    """Create or update a user; the body is the flat profile to merge."""
    user = await service.merge_profile(
        session, app_id=principal.app.id, identifier=identifier, changes=body or {}
    )
    return UserRead.of(user)


@router.get("/users/{identifier}", response_model=UserRead)
async def get_user(session: SessionDep, principal: BackendApp, identifier: str) -> UserRead:
    """Read a user and their profile."""
    service.check_identifier(identifier)
    user = await repository.by_identifier(session, principal.app.id, identifier)
    if user is None:
        raise NotFound("User doesn't exist")
    return UserRead.of(user)


@router.delete("/users/{identifier}", status_code=status.HTTP_202_ACCEPTED, response_model=Message)
async def delete_user(session: SessionDep, principal: BackendApp, identifier: str) -> Message:
    """Delete a user with their inbox, preferences and devices."""
    await service.delete(session, app_id=principal.app.id, identifier=identifier)
    return Message(message="User deleted")


@router.get("/profile")
async def get_profile(session: SessionDep, principal: InboxUser) -> dict[str, Any]:
    """Read the current user's profile."""
    return await service.profile_of(
        session, app_id=principal.app.id, identifier=principal.user_identifier
    )


def _addresses_locked(principal: UserPrincipal) -> bool:
    """With `addressesFromBackendOnly`, only the API secret may change where messages go."""
    return principal.app.addresses_from_backend_only and principal.via is not Via.SECRET


@router.put("/profile", responses=NO_IDENTIFIER)
async def put_profile(
    session: SessionDep, principal: InboxUser, body: ProfileBody = None
) -> dict[str, Any]:
    """Merge key/value pairs into the current user's profile (`fcm.token` appends)."""
    user = await service.merge_profile(
        session,
        app_id=principal.app.id,
        identifier=principal.user_identifier,
        changes=body or {},
        addresses_locked=_addresses_locked(principal),
    )
    return user.profile


@router.patch("/profile", responses=NO_IDENTIFIER)
async def patch_profile(
    session: SessionDep,
    principal: InboxUser,
    body: Annotated[
        list[Any] | dict[str, Any],
        Body(examples=[[{"op": "add", "path": "/timezone", "value": "Europe/Lisbon"}]]),
    ],
) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch array, or merge a plain object, into the profile."""
    if isinstance(body, list):
        user = await service.patch_profile(
            session,
            app_id=principal.app.id,
            identifier=principal.user_identifier,
            operations=body,
            addresses_locked=_addresses_locked(principal),
        )
    else:
        user = await service.merge_profile(
            session,
            app_id=principal.app.id,
            identifier=principal.user_identifier,
            changes=body,
            addresses_locked=_addresses_locked(principal),
        )
    return user.profile
