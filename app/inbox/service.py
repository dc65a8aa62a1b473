"""Rules for the inbox: listing, reading and changing the state of items."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db
from app.auth.principal import Principal
from app.categories import repository as categories_repository
from app.errors import NotFound
from app.inbox import events, page_body, repository
from app.inbox.repository import clicked, seen
from app.inbox.schemas import InboxFilter, NotificationRead, StateChange
from app.kit.timefmt import utcnow
from app.read_pool import ReadPool
from app.users import repository as users_repository


async def deliver(
    session: AsyncSession,
    *,
    app_id: int,
    request_id: uuid.UUID,
    user_ids: Sequence[int],
    content: dict[str, Any],
    created_at: datetime,
) -> int:
    """Write the inbox rows of a send for `user_ids` and announce them on commit.

    A re-run for the same users writes nothing twice. Returns the rows written."""
    written = await repository.write(
        session,
        app_id=app_id,
        request_id=request_id,
        user_ids=user_ids,
        content=content,
        created_at=created_at,
    )
    await events.publish(session, "NEW_NOTIFICATION", written)
    return len(written)


async def page(
    maker: async_sessionmaker[AsyncSession],
    pool: ReadPool | None,
    *,
    app_id: int,
    identifier: str,
    page_no: int,
    limit: int,
    state_filter: InboxFilter | None,
    category: str | None,
    tenant: str | None,
) -> bytes:
    """One inbox page with its counts, as the response's JSON body.

    Without a category or tenant filter the counts come from the user's counters, and the
    whole page, body included, is one statement (`repository.page_json`) on a connection
    held only while it runs. A category or tenant narrows to rows no counter tracks: then
    both counts are exact index scans over the user's rows in that category or tenant
    (ix_notifications_inbox_category, ix_notifications_inbox_tenant), which cost what that
    slice holds, and `page_body` writes the page."""
    # An empty filter value (`?tenantIdentifier=`) means no filter, as for `category`.
    tenant = tenant or None
    if not category and tenant is None:
        async with db.reading(maker, pool) as connection:
            body = await repository.page_json(
                connection,
                app_id=app_id,
                identifier=identifier,
                state_filter=state_filter,
                page_no=page_no,
                limit=limit,
            )
        return body if body is not None else _empty(page_no, limit)
    async with db.read_only(maker) as session:
        user_id = await users_repository.id_of(session, app_id, identifier)
        if user_id is None:
            return _empty(page_no, limit)
        category_id: int | None = None
        if category:
            in_category = await categories_repository.by_identifier(session, app_id, category)
            if in_category is None:
                return _empty(page_no, limit)
            category_id = in_category.id
        scope = repository.inbox(user_id, category_id=category_id, tenant=tenant)
        listed = repository.inbox(
            user_id, category_id=category_id, tenant=tenant, state_filter=state_filter
        )
        total = await repository.count(session, listed)
        unread = await repository.count(session, [*scope, *repository.unseen()])
        offset = (page_no - 1) * limit
        items = await repository.page_items(session, listed, offset=offset, limit=limit)
    return page_body.page(unread=unread, total=total, page_no=page_no, limit=limit, items=items)


def _empty(page_no: int, limit: int) -> bytes:
    return page_body.page(unread=0, total=0, page_no=page_no, limit=limit, items=())


async def unread_count(session: AsyncSession, *, user_id: int) -> int:
    """The badge: the user's items neither seen nor clicked (a counter lookup)."""
    return (await repository.counts(session, user_id)).unseen


async def read_one(
    session: AsyncSession, principal: Principal, notification_id: int
) -> NotificationRead:
    found = await repository.one(
        session, repository.scope(principal.app.id, principal.user_identifier, notification_id)
    )
    if found is None:
        raise NotFound("Notification not found")
    return NotificationRead.of(*found)


async def touch(
    session: AsyncSession,
    principal: Principal,
    notification_id: int,
    values: dict[str, Any],
    event: events.Event,
) -> None:
    """Apply `values` to one item the caller may touch and announce `event`, or raise 404."""
    conditions = repository.scope(principal.app.id, principal.user_identifier, notification_id)
    changed = await repository.change(session, conditions, values)
    if not changed:
        raise NotFound("Notification not found")
    await events.publish(session, event, changed)


async def mark(
    session: AsyncSession,
    principal: Principal,
    notification_id: int,
    values: dict[str, Any],
    event: events.Event,
) -> NotificationRead:
    await touch(session, principal, notification_id, values, event)
    return await read_one(session, principal, notification_id)


def seen_now() -> dict[str, Any]:
    return seen(utcnow())


def clicked_now() -> dict[str, Any]:
    return clicked(utcnow())


def state_values(change: StateChange, now: datetime) -> dict[str, Any]:
    """Built-in states move the timestamps; any other value is a custom (block) state."""
    values: dict[str, Any]
    if change.state == "unread":
        values = {"seen_at": None, "clicked_at": None, "state": None}
    elif change.state == "seen":
        values = {**seen(now), "clicked_at": None, "state": None}
    elif change.state in ("clicked", "read"):
        values = {**clicked(now), "state": None}
    else:
        values = {**seen(now), "state": change.state, "interacted_at": now}
    if change.data:
        values["data"] = repository.merged_data(change.data)
    if change.delete:
        values["deleted_at"] = now
    return values


async def mark_page_seen(
    session: AsyncSession, *, app_id: int, identifier: str, page_no: int, limit: int
) -> int:
    user_id = await users_repository.id_of(session, app_id, identifier)
    if user_id is None:
        return 0
    ids = await repository.page_ids(
        session, repository.inbox(user_id), offset=(page_no - 1) * limit, limit=limit
    )
    changed = await repository.mark_seen(session, ids, utcnow())
    if changed:
        await events.publish(session, "NOTIFICATION_SEEN", changed)
        await events.publish(session, "NOTIFICATION_UNREAD_COUNT", [(user_id, None)])
    return len(changed)


async def mark_all(
    session: AsyncSession,
    *,
    app_id: int,
    identifier: str,
    values: dict[str, Any],
    event: events.Event,
) -> int:
    user_id = await users_repository.id_of(session, app_id, identifier)
    if user_id is None:
        return 0
    changed = await repository.change(session, repository.inbox(user_id), values)
    # Announced even when nothing changed: other tabs may hold a stale view.
    await events.publish(session, event, [(user_id, None)])
    await events.publish(session, "NOTIFICATION_UNREAD_COUNT", [(user_id, None)])
    return len(changed)
