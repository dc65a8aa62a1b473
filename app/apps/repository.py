"""SQL for apps."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps.models import App
from app.keyring import PREFIX


async def by_key(session: AsyncSession, api_key: str) -> App | None:
    return await session.scalar(select(App).where(App.api_key == api_key))


async def by_id(session: AsyncSession, app_id: int) -> App | None:
    return await session.get(App, app_id)


async def all_apps(session: AsyncSession) -> list[App]:
    return list(await session.scalars(select(App).order_by(App.id)))


async def in_plaintext(session: AsyncSession) -> list[App]:
    """Apps with a secret still stored in plaintext (from before migration 0014), locked."""
    sealed = f"{PREFIX}%"
    return list(
        await session.scalars(
            select(App)
            .where(
                App.sealed_api_secret.not_like(sealed)
                | App.sealed_previous_api_secret.not_like(sealed)
                | App.sealed_vapid_private_key.not_like(sealed)
            )
            .order_by(App.id)
            .with_for_update()
        )
    )


async def any_sealed(session: AsyncSession) -> App | None:
    """One app whose secret is sealed: opening it tells whether the key is the right one."""
    return await session.scalar(
        select(App).where(App.sealed_api_secret.like(f"{PREFIX}%")).order_by(App.id.desc()).limit(1)
    )
