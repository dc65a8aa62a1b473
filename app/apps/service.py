"""Rules for apps: creation with fresh credentials, rotation, security switches."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import keys, repository, sealing
from app.apps.models import App
from app.errors import Conflict, NotFound
from app.keyring import Keyring
from app.kit.secrets import random_token
from app.kit.timefmt import utcnow


async def create(session: AsyncSession, keyring: Keyring, *, name: str) -> App:
    vapid_public, vapid_private = keys.new_vapid_pair()
    app = App(
        name=name,
        api_key=random_token(22),
        vapid_public_key=vapid_public,
        secure_mode=False,
        hmac_enabled=False,
        channels=["inApp"],
        addresses_from_backend_only=False,
    )
    sealing.seal_secrets(keyring, app, current=random_token(48), previous=None)
    sealing.seal_vapid(keyring, app, private_key=vapid_private)
    session.add(app)
    await session.flush()
    await session.refresh(app)
    return app


async def get(session: AsyncSession, app_id: int) -> App:
    """The app without its secrets opened (see `get_opened`)."""
    app = await repository.by_id(session, app_id) if 0 < app_id < 2**63 else None
    if app is None:
        raise NotFound("App not found")
    return app


async def get_opened(session: AsyncSession, keyring: Keyring, app_id: int) -> App:
    return sealing.opened(keyring, await get(session, app_id))


async def all_opened(session: AsyncSession, keyring: Keyring) -> list[App]:
    return [sealing.opened(keyring, app) for app in await repository.all_apps(session)]


async def update(
    session: AsyncSession,
    *,
    app: App,
    name: str | None = None,
    secure_mode: bool | None = None,
    hmac_enabled: bool | None = None,
    channels: list[str] | None = None,
    addresses_from_backend_only: bool | None = None,
) -> App:
    if name is not None:
        app.name = name
    if secure_mode is not None:
        if secure_mode and not app.signing_public_key:
            raise Conflict("Register a signing key (POST /admin/apps/{id}/signing-keys) first")
        app.secure_mode = secure_mode
    if hmac_enabled is not None:
        app.hmac_enabled = hmac_enabled
    if channels is not None:
        app.channels = list(dict.fromkeys(channels))
    if addresses_from_backend_only is not None:
        app.addresses_from_backend_only = addresses_from_backend_only
    app.updated_at = utcnow()
    await session.flush()
    return app


async def rotate_secret(
    session: AsyncSession, keyring: Keyring, *, app: App, grace: timedelta
) -> App:
    """Issue a new secret; the current one keeps working for `grace` (not at all when 0).

    Only one previous secret is kept: rotating again ends the older one's grace. `app` must
    be opened (get_opened)."""
    now = utcnow()
    keep = grace > timedelta(0)
    sealing.seal_secrets(
        keyring, app, current=random_token(48), previous=app.api_secret if keep else None
    )
    app.previous_secret_expires_at = now + grace if keep else None
    app.updated_at = now
    await session.flush()
    return app


async def set_signing_key(
    session: AsyncSession, *, app: App, public_key: str | None
) -> tuple[str, str | None]:
    """Register the caller's public key, or make a pair and hand back its private half once."""
    private: str | None = None
    if public_key is None:
        public_key, private = keys.new_signing_pair()
    else:
        public_key = keys.normalise_public_key(public_key)
    app.signing_public_key = public_key
    app.updated_at = utcnow()
    await session.flush()
    return public_key, private


async def delete(session: AsyncSession, *, app: App) -> None:
    await session.delete(app)
    await session.flush()
