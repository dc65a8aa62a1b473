"""SQL for devices."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.devices.models import Device


async def register(
    session: AsyncSession,
    *,
    user_id: int,
    device_identifier: str,
    device_type: str | None = None,
    browser_type: str | None = None,
    web_push_subscription: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"user_id": user_id, "device_identifier": device_identifier}
    changes: dict[str, Any] = {"last_seen_at": func.now()}
    for column, value in (
        ("device_type", device_type),
        ("browser_type", browser_type),
        ("web_push_subscription", web_push_subscription),
    ):
        if value is not None:
            values[column] = changes[column] = value
    stmt = insert(Device).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["user_id", "device_identifier"], set_=changes)
    )


async def subscriptions_of(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """user id -> the web-push subscriptions of their devices, oldest device first."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(Device.user_id, Device.web_push_subscription)
        .where(Device.user_id.in_(list(user_ids)), Device.web_push_subscription.is_not(None))
        .order_by(Device.user_id, Device.id)
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for user_id, subscription in rows:
        if isinstance(subscription, dict):
            found.setdefault(user_id, []).append(subscription)
    return found


async def drop_subscription(session: AsyncSession, *, user_id: int, endpoint: str) -> int:
    """Forget the user's web-push subscription at `endpoint` (the push service said it is
    gone); return how many devices held it."""
    result = await session.execute(
        update(Device)
        .where(
            Device.user_id == user_id,
            Device.web_push_subscription["endpoint"].astext == endpoint,
        )
        # SQL NULL: a bare None would store the JSON value `null`, still IS NOT NULL.
        .values(web_push_subscription=null())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
