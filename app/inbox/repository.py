"""SQL for inbox items. Every statement goes through `scope`, so none can forget the tenant."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category
from app.inbox.models import Notification
from app.users.models import User


def scope(
    app_id: int, user_identifier: str | None, notification_id: int | None = None
) -> list[ColumnElement[bool]]:
    """Rows a caller may touch: one user's inbox, or (a backend) the whole app; optionally
    just one item of them."""
    conditions: list[ColumnElement[bool]] = [
        Notification.app_id == app_id,
        Notification.deleted_at.is_(None),
    ]
    if notification_id is not None:
        conditions.append(Notification.id == notification_id)
    if user_identifier is not None:
        user_ids = select(User.id).where(User.app_id == app_id, User.identifier == user_identifier)
        conditions.append(Notification.user_id == user_ids.scalar_subquery())
    return conditions


def inbox(
    user_id: int,
    *,
    category_id: int | None = None,
    tenant: str | None = None,
    state_filter: str | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Notification.user_id == user_id,
        Notification.deleted_at.is_(None),
    ]
    if category_id is not None:
        conditions.append(Notification.category_id == category_id)
    if tenant is not None:
        conditions.append(Notification.tenant_identifier == tenant)
    if state_filter == "unread":
        conditions.append(Notification.clicked_at.is_(None))
    elif state_filter == "read":
        conditions.append(Notification.clicked_at.is_not(None))
    elif state_filter == "interacted":
        conditions.append(Notification.interacted_at.is_not(None))
    return conditions


def unseen() -> list[ColumnElement[bool]]:
    return [Notification.seen_at.is_(None), Notification.clicked_at.is_(None)]


async def count(session: AsyncSession, conditions: Sequence[ColumnElement[bool]]) -> int:
    total = await session.scalar(select(func.count()).select_from(Notification).where(*conditions))
    return int(total or 0)


async def page(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], *, offset: int, limit: int
) -> list[tuple[Notification, Category | None]]:
    rows = await session.execute(
        select(Notification, Category)
        .outerjoin(Category, Category.id == Notification.category_id)
        .where(*conditions)
        .order_by(Notification.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(n, c) for n, c in rows]


async def one(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]]
) -> tuple[Notification, Category | None] | None:
    row = await session.execute(
        select(Notification, Category)
        .outerjoin(Category, Category.id == Notification.category_id)
        .where(*conditions)
        .execution_options(populate_existing=True)
    )
    found = row.first()
    return (found[0], found[1]) if found else None


async def change(
    session: AsyncSession,
    conditions: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
) -> list[tuple[int, int]]:
    """Update the matching rows; return their (user id, notification id) pairs."""
    result = await session.execute(
        update(Notification)
        .where(*conditions)
        .values(**values)
        .returning(Notification.user_id, Notification.id)
        .execution_options(synchronize_session=False)
    )
    return [(user_id, notification_id) for user_id, notification_id in result]


async def mark_seen(
    session: AsyncSession, ids: Sequence[int], now: datetime
) -> list[tuple[int, int]]:
    """Mark the items not seen yet among `ids` seen; return the (user, id) pairs changed."""
    return await change(
        session, [Notification.id.in_(ids), Notification.seen_at.is_(None)], {"seen_at": now}
    )


_WRITE = text(
    """
    INSERT INTO notifications (app_id, user_id, request_id, title, message, icon, url, data,
                               blocks, category_id, tenant_identifier, created_at)
    SELECT :app_id, u, :request_id, :title, :message, :icon, :url, :data, :blocks,
           :category_id, :tenant, :created_at
    FROM unnest(CAST(:user_ids AS bigint[])) AS u
    ON CONFLICT (request_id, user_id) DO NOTHING
    RETURNING user_id, id
    """
).bindparams(bindparam("data", type_=JSONB), bindparam("blocks", type_=JSONB))


async def write(
    session: AsyncSession,
    *,
    app_id: int,
    request_id: uuid.UUID,
    user_ids: Sequence[int],
    content: dict[str, Any],
    created_at: datetime,
) -> list[tuple[int, int]]:
    """Write one inbox row per user in a single statement; a re-run writes nothing twice.

    Returns the (user id, notification id) pairs written."""
    if not user_ids:
        return []
    result = await session.execute(
        _WRITE,
        {
            "app_id": app_id,
            "request_id": request_id,
            "user_ids": list(user_ids),
            "created_at": created_at,
            **content,
        },
    )
    return [(row[0], row[1]) for row in result]


async def page_ids(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], *, offset: int, limit: int
) -> list[int]:
    ids = await session.scalars(
        select(Notification.id)
        .where(*conditions)
        .order_by(Notification.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(ids)


async def by_ids(
    session: AsyncSession, ids: Sequence[int]
) -> list[tuple[Notification, Category | None]]:
    """Load items for realtime delivery (ids come from committed events)."""
    if not ids:
        return []
    rows = await session.execute(
        select(Notification, Category)
        .outerjoin(Category, Category.id == Notification.category_id)
        .where(Notification.id.in_(ids), Notification.deleted_at.is_(None))
        .order_by(Notification.id)
    )
    return [(n, c) for n, c in rows]


# Values for `change`: what each way of touching an item does to its columns. A timestamp
# already set is kept, so a second click does not move `clickedAt`.


def seen(now: datetime) -> dict[str, Any]:
    return {"seen_at": func.coalesce(Notification.seen_at, now)}


def clicked(now: datetime) -> dict[str, Any]:
    return {**seen(now), "clicked_at": func.coalesce(Notification.clicked_at, now)}


def merged_data(data: dict[str, Any]) -> Any:
    """`data` merged over the item's own, as a column value."""
    # A row sent without data holds JSON `null`, and `null || {…}` would make an array.
    current = case(
        (func.jsonb_typeof(Notification.data) == "object", Notification.data),
        else_=func.jsonb_build_object(),
    )
    return current.op("||")(literal(data, JSONB))


async def counts_by_request(
    session: AsyncSession, request_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Inbox rows written per send, deleted ones included."""
    if not request_ids:
        return {}
    rows = await session.execute(
        select(Notification.request_id, func.count())
        .where(Notification.request_id.in_(request_ids))
        .group_by(Notification.request_id)
    )
    return {request_id: int(count) for request_id, count in rows}
