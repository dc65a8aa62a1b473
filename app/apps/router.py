from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from app.apps import service
from app.apps.schemas import AppCreate, AppRead, AppUpdate, SigningKeyIn, SigningKeyOut
from app.auth.dependencies import AdminDep
from app.config import SettingsDep
from app.db import SessionDep
from app.errors import answers
from app.keyring import keyring
from app.kit.types import DbId

router = APIRouter(prefix="/admin/apps", tags=["admin"], dependencies=[AdminDep])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AppRead)
async def create_app(session: SessionDep, settings: SettingsDep, body: AppCreate) -> AppRead:
    """Create an app with a fresh API key, secret and web-push key pair."""
    return AppRead.of(await service.create(session, keyring(settings), name=body.name))


@router.get("", response_model=list[AppRead])
async def list_apps(session: SessionDep, settings: SettingsDep) -> list[AppRead]:
    """List every app."""
    return [AppRead.of(a) for a in await service.all_opened(session, keyring(settings))]


@router.get("/{app_id}", response_model=AppRead)
async def get_app(session: SessionDep, settings: SettingsDep, app_id: DbId) -> AppRead:
    """Read one app with its credentials."""
    return AppRead.of(await service.get_opened(session, keyring(settings), app_id))


# 409: secure mode before a signing key is registered.
@router.patch("/{app_id}", response_model=AppRead, responses=answers(409))
async def update_app(
    session: SessionDep, settings: SettingsDep, app_id: DbId, body: AppUpdate
) -> AppRead:
    """Rename an app, switch secure mode or HMAC, set its channels, or make profile address
    keys (`addressesFromBackendOnly`) writable only with the API secret."""
    app = await service.get_opened(session, keyring(settings), app_id)
    await service.update(
        session,
        app=app,
        name=body.name,
        secure_mode=body.secureMode,
        hmac_enabled=body.hmacEnabled,
        channels=list(body.channels) if body.channels is not None else None,
        addresses_from_backend_only=body.addressesFromBackendOnly,
    )
    return AppRead.of(app)


@router.delete("/{app_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_app(session: SessionDep, app_id: DbId) -> None:
    """Delete an app and everything in it."""
    await service.delete(session, app=await service.get(session, app_id))


GraceSeconds = Annotated[
    int | None,
    Query(
        alias="graceSeconds",
        ge=0,
        le=365 * 86400,
        description="How long the old secret keeps working; default HERALD_SECRET_GRACE, "
        "0 ends it at once.",
    ),
]


@router.post("/{app_id}/rotate-secret", response_model=AppRead)
async def rotate_secret(
    session: SessionDep, settings: SettingsDep, app_id: DbId, grace_seconds: GraceSeconds = None
) -> AppRead:
    """Replace the API secret; the old one keeps working until `previousSecretExpiresAt`
    (HERALD_SECRET_GRACE, 24 h by default, or `graceSeconds`), so backends roll over."""
    grace = settings.secret_grace if grace_seconds is None else timedelta(seconds=grace_seconds)
    ring = keyring(settings)
    app = await service.get_opened(session, ring, app_id)
    return AppRead.of(await service.rotate_secret(session, ring, app=app, grace=grace))


@router.post(
    "/{app_id}/signing-keys", status_code=status.HTTP_201_CREATED, response_model=SigningKeyOut
)
async def set_signing_key(
    session: SessionDep,
    app_id: DbId,
    body: Annotated[SigningKeyIn | None, Body()] = None,
) -> SigningKeyOut:
    """Make an RS256 key pair (the private key is shown once, never stored), or register
    your own public key with `{"publicKey": "<PEM>"}`."""
    app = await service.get(session, app_id)
    public, private = await service.set_signing_key(
        session, app=app, public_key=body.publicKey if body else None
    )
    return SigningKeyOut(publicKey=public, privateKey=private)
