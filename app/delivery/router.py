import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.apps import service as apps_service
from app.auth.dependencies import AdminDep
from app.config import SettingsDep
from app.db import SessionDep
from app.delivery import crypto, repository, service
from app.delivery.models import DeliveryStatus
from app.delivery.schemas import (
    DeliveryPage,
    DeliveryRead,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
)
from app.kit.types import Channel, DbId
from app.users import repository as users_repository

router = APIRouter(prefix="/admin/apps/{app_id}", tags=["admin"], dependencies=[AdminDep])


async def _app(session: SessionDep, app_id: int) -> int:
    return (await apps_service.get(session, app_id)).id


@router.post(
    "/channels/{channel}/providers",
    status_code=status.HTTP_201_CREATED,
    response_model=ProviderRead,
)
async def create_provider(
    session: SessionDep, settings: SettingsDep, app_id: DbId, channel: Channel, body: ProviderCreate
) -> ProviderRead:
    """Add a provider to a channel, e.g. `{"provider": "smtp_email", "config": {…}}`; secrets
    in the config are stored encrypted and shown masked."""
    await _app(session, app_id)
    provider = await service.create_provider(
        session, crypto.keyring(settings), app_id=app_id, channel=channel, body=body
    )
    return service.read(provider)


@router.get("/channels/{channel}/providers", response_model=list[ProviderRead])
async def list_providers(session: SessionDep, app_id: DbId, channel: Channel) -> list[ProviderRead]:
    """List a channel's providers in the order they are tried (priority, then creation)."""
    await _app(session, app_id)
    return [
        service.read(p) for p in await repository.providers_of_channel(session, app_id, channel)
    ]


@router.get("/providers/{provider_id}", response_model=ProviderRead)
async def get_provider(session: SessionDep, app_id: DbId, provider_id: DbId) -> ProviderRead:
    """Read one provider, secrets masked."""
    return service.read(await service.get_provider(session, app_id=app_id, provider_id=provider_id))


@router.patch("/providers/{provider_id}", response_model=ProviderRead)
async def update_provider(
    session: SessionDep,
    settings: SettingsDep,
    app_id: DbId,
    provider_id: DbId,
    body: ProviderUpdate,
) -> ProviderRead:
    """Change a provider; `config` is merged into the stored one (a key set to null is removed)."""
    provider = await service.get_provider(session, app_id=app_id, provider_id=provider_id)
    await service.update_provider(session, crypto.keyring(settings), provider=provider, body=body)
    return service.read(provider)


@router.delete("/providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(session: SessionDep, app_id: DbId, provider_id: DbId) -> None:
    """Remove a provider; deliveries it made keep its name in their log."""
    provider = await service.get_provider(session, app_id=app_id, provider_id=provider_id)
    await repository.delete_provider(session, provider)


@router.get("/requests/{request_id}/deliveries", response_model=list[DeliveryRead])
async def deliveries_of_request(
    session: SessionDep,
    app_id: DbId,
    request_id: uuid.UUID,
    after: DbId | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[DeliveryRead]:
    """List a send's deliveries beyond the inbox, each with its attempts, oldest first
    (`after=<last id>` for the next page)."""
    await _app(session, app_id)
    rows = await repository.of_request(session, app_id, request_id, after=after, limit=limit)
    return [DeliveryRead.of(d) for d in rows]


@router.get("/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    session: SessionDep,
    app_id: DbId,
    state: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    channel: Channel | None = None,
    user: Annotated[str | None, Query(max_length=255)] = None,
    before: DbId | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeliveryPage:
    """Page through an app's deliveries, newest first, by `status`, `channel` and `user`."""
    await _app(session, app_id)
    user_id: int | None = None
    if user is not None:
        user_id = await users_repository.id_of(session, app_id, user)
        if user_id is None:
            return DeliveryPage(data=[], nextBefore=None)
    rows = await repository.page(
        session, app_id, status=state, channel=channel, user_id=user_id, before=before, limit=limit
    )
    return DeliveryPage(
        data=[DeliveryRead.of(d) for d in rows],
        nextBefore=rows[-1].id if len(rows) == limit else None,
    )
