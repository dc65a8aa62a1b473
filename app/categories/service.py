"""Rules for categories."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.categories import repository
from app.categories.models import Category
from app.categories.schemas import CategoryCreate, CategoryUpdate
from app.errors import Conflict, NotFound
from app.kit.timefmt import utcnow


async def create(session: AsyncSession, *, app_id: int, body: CategoryCreate) -> Category:
    created = await repository.insert_new(
        session,
        app_id=app_id,
        identifier=body.identifier,
        name=body.name or body.identifier,
        hide_in_in_app=body.hideInInApp,
        hide_in_preference_manager=body.hideInPreferenceManager,
    )
    if created is None:
        raise Conflict(f"A category with identifier '{body.identifier}' already exists")
    return created


async def get(session: AsyncSession, *, app_id: int, category_id: int) -> Category:
    category = (
        await repository.by_id(session, app_id, category_id) if 0 < category_id < 2**63 else None
    )
    if category is None:
        raise NotFound("Category not found")
    return category


async def update(
    session: AsyncSession, *, app_id: int, category_id: int, body: CategoryUpdate
) -> Category:
    category = await get(session, app_id=app_id, category_id=category_id)
    if body.name is not None:
        category.name = body.name
    if body.hideInInApp is not None:
        category.hide_in_in_app = body.hideInInApp
    if body.hideInPreferenceManager is not None:
        category.hide_in_preference_manager = body.hideInPreferenceManager
    category.updated_at = utcnow()
    await session.flush()
    return category


async def delete(session: AsyncSession, *, app_id: int, category_id: int) -> None:
    category = await get(session, app_id=app_id, category_id=category_id)
    await session.delete(category)
    await session.flush()
