"""SQL for apps."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps.models import App


async def by_key(session: AsyncSession, api_key: str) -> App | None:
    return await session.scalar(select(App).where(App.api_key == api_key))


async def by_id(session: AsyncSession, app_id: int) -> App | None:
    return await session.get(App, app_id)


async def all_apps(session: AsyncSession) -> list[App]:
    return list(await session.scalars(select(App).order_by(App.id)))
