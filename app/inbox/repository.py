"""SQL for inbox items. Every statement goes through `scope`, so none can forget the tenant."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.categories.models import Category
from app.inbox.models import InboxCounter, Notification
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
    user_id: int | ColumnElement[int] | InstrumentedAttribute[int],
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


@dataclass(frozen=True, slots=True)
class Counts:
    """A user's inbox counters (see InboxCounter): exact, maintained by the writes."""

    total: int = 0
    unseen: int = 0
    unclicked: int = 0
    interacted: int = 0


async def counts(session: AsyncSession, user_id: int) -> Counts:
    """The user's counters: one primary-key lookup."""
    row = (
        await session.execute(
            select(
                InboxCounter.total,
                InboxCounter.unseen,
                InboxCounter.unclicked,
                InboxCounter.interacted,
            ).where(InboxCounter.user_id == user_id)
        )
    ).first()
    return Counts(*row) if row is not None else Counts()


# An inbox item as the page reads it: the row's own columns and its category's.
ITEM_COLUMNS = (
    Notification.id,
    Notification.title,
    Notification.message,
    Notification.icon,
    Notification.url,
    Notification.data,
    Notification.blocks,
    Notification.created_at,
    Notification.seen_at,
    Notification.clicked_at,
    Notification.state,
    Category.id.label("category_id"),
    Category.identifier.label("category_identifier"),
    Category.name.label("category_name"),
)


# The page's JSON, written by PostgreSQL: the user, their counters and one page of their
# inbox in one statement that returns the response body. Decoding fifteen rows of eighteen
# columns (two of them JSON) and writing them out again cost the server more CPU than the
# rest of the request; json_build_object does it in C, beside the rows. The fields, their
# order and their values are NotificationRead's and InboxPage's; tests/inbox/test_page_body.py
# holds every page shape to the models. The WHERE clauses are `inbox`'s, spelled in SQL, and
# each filter's totalCount is its counter (read = total - unclicked): the page is a range read
# of ix_notifications_inbox and the counts a primary-key lookup, whatever the inbox size.
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
_PAGE_FILTERS = {
    None: ("", "coalesce(c.total, 0)"),
    "unread": ("AND n.clicked_at IS NULL", "coalesce(c.unclicked, 0)"),
    "read": ("AND n.clicked_at IS NOT NULL", "coalesce(c.total, 0) - coalesce(c.unclicked, 0)"),
    "interacted": ("AND n.interacted_at IS NOT NULL", "coalesce(c.interacted, 0)"),
}
_PAGE_SQL = """
SELECT convert_to(json_build_object(
    'unreadCount', coalesce(c.unseen, 0),
    'pagination', json_build_object(
        'totalCount', t.total,
        'pageNo', $3::bigint,
        'limit', $4::bigint,
        'totalPages', (t.total + $4::bigint - 1) / $4::bigint
    ),
    'data', coalesce(p.items, '[]'::json)
)::text, 'UTF8')
FROM users u
LEFT JOIN inbox_counters c ON c.user_id = u.id
CROSS JOIN LATERAL (SELECT {total} AS total) t
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
        'id', n.id,
        'title', n.title,
        'message', n.message,
        'icon', n.icon,
        'url', n.url,
        'data', n.data,
        'category', CASE WHEN k.id IS NULL THEN NULL ELSE json_build_object(
            'id', k.id::text, 'identifier', k.identifier, 'name', k.name) END,
        'blocks', coalesce(nullif(n.blocks, 'null'::jsonb), '[]'::jsonb),
        'createdAt', {created},
        'seenAt', {seen},
        'clickedAt', {clicked},
        'state', coalesce(nullif(n.state, ''), CASE
            WHEN n.clicked_at IS NOT NULL THEN 'clicked'
            WHEN n.seen_at IS NOT NULL THEN 'seen'
            ELSE 'unread' END)
    ) ORDER BY n.id DESC) AS items
    FROM (
        SELECT * FROM notifications n
        WHERE n.user_id = u.id AND n.deleted_at IS NULL {where}
        ORDER BY n.id DESC OFFSET $5 LIMIT $4
    ) n
    LEFT JOIN categories k ON k.id = n.category_id
) p ON true
WHERE u.app_id = $1 AND u.identifier = $2
"""
_PAGE_SQLS = {
    f: _PAGE_SQL.format(
        total=total,
        where=where,
        created=_ISO.format("n.created_at"),
        seen=_ISO.format("n.seen_at"),
        clicked=_ISO.format("n.clicked_at"),
    )
    for f, (where, total) in _PAGE_FILTERS.items()
}


async def page_json(
    connection: asyncpg.Connection,
    *,
    app_id: int,
    identifier: str,
    state_filter: str | None,
    page_no: int,
    limit: int,
) -> bytes | None:
    """One page of the user's inbox with its counts, as the response body; None: no such
    user. On the driver's connection (db.reading), which prepares the text once."""
    body: bytes | None = await connection.fetchval(
        _PAGE_SQLS[state_filter], app_id, identifier, page_no, limit, (page_no - 1) * limit
    )
    return body


async def page_items(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], *, offset: int, limit: int
) -> list[Sequence[Any]]:
    rows = await session.execute(
        select(*ITEM_COLUMNS)
        .outerjoin(Category, Category.id == Notification.category_id)
        .where(*conditions)
        .order_by(Notification.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all())


async def count(session: AsyncSession, conditions: Sequence[ColumnElement[bool]]) -> int:
    """An exact count by index scan: for the filters that have no counter (category, tenant)."""
    total = await session.scalar(select(func.count()).select_from(Notification).where(*conditions))
    return int(total or 0)


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


async def purge(
    session: AsyncSession,
    *,
    created_before: datetime,
    app_id: int | None = None,
    limit: int = 10_000,
) -> int:
    """Delete up to `limit` inbox rows created before `created_before` (of one app, or of
    all), oldest first, soft-deleted ones included; return how many went. Call it until it
    returns less than `limit`.

    The users' counters are corrected in the same statement (the delete trigger), so a purge
    never leaves a count wrong, and bounded batches keep its locks short. Rows that another
    transaction holds are skipped and taken by a later batch."""
    conditions: list[ColumnElement[bool]] = [Notification.created_at < created_before]
    if app_id is not None:
        conditions.append(Notification.app_id == app_id)
    # Oldest first through ix_notifications_created_at: imported history (old dates, new
    # ids) is found as fast as rows that aged in place.
    # MATERIALIZED: as a plain subquery the planner may run the batch again for each row
    # it joins, and with SKIP LOCKED each run can pick other rows: a batch of 3 deleted 5,
    # and the caller, told "not 3", stopped with old rows left.
    batch = (
        select(Notification.id)
        .where(*conditions)
        .order_by(Notification.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("batch")
        .prefix_with("MATERIALIZED")
    )
    result = await session.execute(
        delete(Notification)
        .where(Notification.id.in_(select(batch.c.id)))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# The columns `copy_rows` fills, in the order its records hold them.
COPY_COLUMNS = (
    "app_id",
    "user_id",
    "request_id",
    "title",
    "message",
    "icon",
    "url",
    "data",
    "blocks",
    "category_id",
    "tenant_identifier",
    "state",
    "created_at",
    "seen_at",
    "clicked_at",
    "interacted_at",
)


async def copy_rows(session: AsyncSession, records: Sequence[tuple[Any, ...]]) -> None:
    """Bulk-load inbox rows with COPY in the session's transaction (`data` and `blocks` as
    JSON text). The counter trigger runs once for the whole COPY, so counts stay exact."""
    if records:
        await _copy(session, "notifications", COPY_COLUMNS, records)


async def _copy(
    session: AsyncSession, table: str, columns: Sequence[str], records: Sequence[tuple[Any, ...]]
) -> None:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table, records=records, columns=list(columns)
    )
