"""SQL for categories; every statement is scoped to one app."""

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category


async def list_for_app(session: AsyncSession, app_id: int) -> list[Category]:
    return list(
        await session.scalars(
            select(Category).where(Category.app_id == app_id).order_by(Category.id)
        )
    )


async def by_id(session: AsyncSession, app_id: int, category_id: int) -> Category | None:
    return await session.scalar(
        select(Category).where(Category.app_id == app_id, Category.id == category_id)
    )


async def by_identifier(session: AsyncSession, app_id: int, identifier: str) -> Category | None:
    return await session.scalar(
        select(Category).where(Category.app_id == app_id, Category.identifier == identifier)
    )


async def ensure(session: AsyncSession, app_id: int, identifier: str) -> Category:
    """Return the category, creating it on the fly as Engagespot does for unknown ones."""
    await session.execute(
        insert(Category)
        .values(app_id=app_id, identifier=identifier, name=identifier)
        .on_conflict_do_nothing(index_elements=["app_id", "identifier"])
    )
    category = await by_identifier(session, app_id, identifier)
    assert category is not None
    return category


async def insert_new(
    session: AsyncSession,
    *,
    app_id: int,
    identifier: str,
    name: str,
    hide_in_in_app: bool,
    hide_in_preference_manager: bool,
) -> Category | None:
    """Insert a category; None when the identifier is taken in the app."""
    created: Category | None = await session.scalar(
        insert(Category)
        .values(
            app_id=app_id,
            identifier=identifier,
            name=name,
            hide_in_in_app=hide_in_in_app,
            hide_in_preference_manager=hide_in_preference_manager,
        )
        .on_conflict_do_nothing(index_elements=["app_id", "identifier"])
        .returning(Category)
    )
    return created


async def known_ids(session: AsyncSession, app_id: int, ids: set[int]) -> set[int]:
    """The ids among `ids` that are categories of the app."""
    return set(
        await session.scalars(
            select(Category.id).where(Category.app_id == app_id, Category.id.in_(ids))
        )
    )
