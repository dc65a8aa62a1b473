"""SQL for devices."""

from typing import Any

from sqlalchemy import func
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
