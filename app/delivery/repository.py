"""SQL for providers and deliveries; every lookup an admin can reach is scoped to one app."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import column, func, select, table, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps.models import App
from app.delivery import catalogue
from app.delivery.models import Delivery, DeliveryMessage, DeliveryStatus, Provider

# -- providers -----------------------------------------------------------------------------


async def add_provider(session: AsyncSession, provider: Provider) -> Provider:
    session.add(provider)
    await session.flush()
    await session.refresh(provider)
    return provider


async def provider_of_app(session: AsyncSession, app_id: int, provider_id: int) -> Provider | None:
    return await session.scalar(
        select(Provider).where(Provider.app_id == app_id, Provider.id == provider_id)
    )


async def providers_of_channel(
    session: AsyncSession, app_id: int, channel: str, *, enabled_only: bool = False
) -> list[Provider]:
    query = select(Provider).where(Provider.app_id == app_id, Provider.channel == channel)
    if enabled_only:
        query = query.where(Provider.enabled.is_(True))
    return list(await session.scalars(query.order_by(Provider.priority, Provider.id)))


async def enabled_providers(session: AsyncSession, app_id: int) -> list[Provider]:
    return list(
        await session.scalars(
            select(Provider)
            .where(Provider.app_id == app_id, Provider.enabled.is_(True))
            .order_by(Provider.priority, Provider.id)
        )
    )


async def enabled_channels(session: AsyncSession, app_id: int) -> set[str]:
    rows = await session.scalars(
        select(Provider.channel)
        .where(Provider.app_id == app_id, Provider.enabled.is_(True))
        .distinct()
    )
    return set(rows)


async def delete_provider(session: AsyncSession, provider: Provider) -> None:
    await session.delete(provider)
    await session.flush()


async def fresh_provider(session: AsyncSession, provider_id: int) -> Provider | None:
    return await session.scalar(
        select(Provider).where(Provider.id == provider_id).execution_options(populate_existing=True)
    )


# A slot on the provider's schedule, shared by every worker: each send takes the next
# free one and pushes it 1/rate further (GCRA). One short row lock per send. The clock is
# read when the row lock is held, not at the transaction's start (`now()`): a claim that
# waited for the lock would otherwise take a slot already in its past and send at once.
_RESERVE = text(
    """
    UPDATE providers
    SET next_slot_at = greatest(coalesce(next_slot_at, clock_timestamp()), clock_timestamp())
                       + make_interval(secs => 1.0 / rate_limit)
    WHERE id = :id AND rate_limit IS NOT NULL
    RETURNING next_slot_at - make_interval(secs => 1.0 / rate_limit), clock_timestamp()
    """
)


async def reserve_slot(session: AsyncSession, provider_id: int) -> tuple[datetime, float] | None:
    """The reserved slot, and how many seconds from the reservation it begins."""
    row = (await session.execute(_RESERVE, {"id": provider_id})).one_or_none()
    if row is None:
        return None
    slot, clock = row
    return slot, (slot - clock).total_seconds()


async def pause_provider(session: AsyncSession, provider_id: int, until: datetime) -> None:
    await session.execute(
        update(Provider)
        .where(Provider.id == provider_id)
        .values(paused_until=func.greatest(func.coalesce(Provider.paused_until, until), until))
    )


# -- messages and deliveries ---------------------------------------------------------------


async def message_ref(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    channel: str,
    content: dict[str, Any],
    overrides: str | None,
) -> int:
    """The id of the send's message on `channel`, stored by the first batch that needs it."""
    inserted = await session.scalar(
        insert(DeliveryMessage)
        .values(request_id=request_id, channel=channel, content=content, overrides=overrides)
        .on_conflict_do_nothing(index_elements=["request_id", "channel"])
        .returning(DeliveryMessage.id)
    )
    if inserted is not None:
        return int(inserted)
    found = await session.scalar(
        select(DeliveryMessage.id).where(
            DeliveryMessage.request_id == request_id, DeliveryMessage.channel == channel
        )
    )
    assert found is not None
    return int(found)


async def message(session: AsyncSession, ref: int) -> DeliveryMessage | None:
    return await session.get(DeliveryMessage, ref)


async def insert_deliveries(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[tuple[int, DeliveryStatus, str | None]]:
    """Insert deliveries; one already there (a re-run batch) is left alone. Returns the new
    rows' (id, status, provider kind)."""
    written: list[tuple[int, DeliveryStatus, str | None]] = []
    # A multi-row VALUES binds every column of every row: chunks keep a fan-out batch of
    # 5,000 users under PostgreSQL's 32,767 parameters per statement.
    for start in range(0, len(rows), _INSERT_CHUNK):
        result = await session.execute(
            insert(Delivery)
            .values(list(rows[start : start + _INSERT_CHUNK]))
            .on_conflict_do_nothing(
                index_elements=["request_id", "user_id", "channel", "target_key"]
            )
            .returning(Delivery.id, Delivery.status, Delivery.provider_kind)
        )
        written += [(int(i), DeliveryStatus(s), k) for i, s, k in result]
    return written


_INSERT_CHUNK = 1_000


async def delivery(
    session: AsyncSession, delivery_id: int, *, lock: bool = False
) -> Delivery | None:
    query = select(Delivery).where(Delivery.id == delivery_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def mark_phase(session: AsyncSession, delivery_id: int, attempts: int, phase: str) -> None:
    await session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.attempts == attempts,
        )
        .values(phase=phase)
    )


async def deliveries(session: AsyncSession, delivery_ids: Sequence[int]) -> list[Delivery]:
    return list(
        await session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)))
            .execution_options(populate_existing=True)
        )
    )


async def lock_free(session: AsyncSession, delivery_ids: Sequence[int]) -> list[int]:
    """Lock the deliveries no other transaction holds, in id order; their ids. (A held one is
    being claimed or recorded by its own job.)"""
    rows = await session.scalars(
        select(Delivery.id)
        .where(Delivery.id.in_(list(delivery_ids)))
        .order_by(Delivery.id)
        .with_for_update(skip_locked=True)
    )
    return [int(i) for i in rows]


async def mark_phases(session: AsyncSession, claims: Sequence[tuple[int, int]], phase: str) -> None:
    """`mark_phase` for many (delivery id, attempts) claims in one statement."""
    if not claims:
        return
    await session.execute(
        text(
            """
            UPDATE deliveries AS d SET phase = :phase
            FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS int[])) AS c(id, attempts)
            WHERE d.id = c.id AND d.attempts = c.attempts AND d.status = 'sending'
            """
        ),
        {"phase": phase, "ids": [i for i, _ in claims], "attempts": [a for _, a in claims]},
    )


async def of_request(
    session: AsyncSession, app_id: int, request_id: uuid.UUID, *, after: int | None, limit: int
) -> list[Delivery]:
    rows = await session.scalars(
        select(Delivery)
        .where(
            Delivery.app_id == app_id,
            Delivery.request_id == request_id,
            Delivery.id > (after or 0),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    return list(rows)


async def page(
    session: AsyncSession,
    app_id: int,
    *,
    status: DeliveryStatus | None,
    channel: str | None,
    user_id: int | None,
    before: int | None,
    limit: int,
) -> list[Delivery]:
    query = select(Delivery).where(Delivery.app_id == app_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if user_id is not None:
        query = query.where(Delivery.user_id == user_id)
    if before is not None:
        query = query.where(Delivery.id < before)
    return list(await session.scalars(query.order_by(Delivery.id.desc()).limit(limit)))


async def counts_by_request(
    session: AsyncSession, request_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, dict[str, int]]]:
    """request id -> channel -> status -> deliveries."""
    if not request_ids:
        return {}
    rows = await session.execute(
        select(Delivery.request_id, Delivery.channel, Delivery.status, func.count())
        .where(Delivery.request_id.in_(list(request_ids)))
        .group_by(Delivery.request_id, Delivery.channel, Delivery.status)
    )
    out: dict[uuid.UUID, dict[str, dict[str, int]]] = {}
    for request_id, channel, status, n in rows:
        out.setdefault(request_id, {}).setdefault(channel, {})[str(status)] = int(n)
    return out


# -- delivery callbacks --------------------------------------------------------------------
# A callback names its provider by id and carries no app credentials: the provider's
# signature scopes it, and the delivery is looked up within that provider only.


async def provider_by_id(session: AsyncSession, provider_id: int) -> Provider | None:
    return await session.get(Provider, provider_id)


async def by_provider_message(
    session: AsyncSession, provider_id: int, provider_message_id: str
) -> Delivery | None:
    """The provider's delivery with this message id, locked for the caller's transaction."""
    return await session.scalar(
        select(Delivery)
        .where(
            Delivery.provider_id == provider_id,
            Delivery.provider_message_id == provider_message_id,
        )
        .order_by(Delivery.id)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# -- web push ------------------------------------------------------------------------------


async def ensure_default_webpush(session: AsyncSession, app_id: int, now: datetime) -> Provider:
    """The app's `default_webpush` provider, added (enabled, default settings) if it has
    none. Concurrent first sends meet on the unique index: one row, whoever wins."""
    await session.execute(
        insert(Provider)
        .values(
            app_id=app_id,
            channel=catalogue.WEB_PUSH,
            provider=catalogue.DEFAULT_WEBPUSH,
            name=catalogue.DEFAULT_WEBPUSH,
            config={},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["app_id"],
            index_where=Provider.provider == catalogue.DEFAULT_WEBPUSH,
        )
    )
    found = await session.scalar(
        select(Provider).where(
            Provider.app_id == app_id, Provider.provider == catalogue.DEFAULT_WEBPUSH
        )
    )
    assert found is not None
    return found


async def has_provider(session: AsyncSession, app_id: int, provider: str) -> bool:
    """Whether the app has a row of this provider kind, enabled or not."""
    found = await session.scalar(
        select(Provider.id).where(Provider.app_id == app_id, Provider.provider == provider).limit(1)
    )
    return found is not None


# The inbox's table, read by name: delivery and inbox are independent packages.
_notifications = table("notifications", column("id"), column("request_id"), column("user_id"))


async def web_push_facts(
    session: AsyncSession, *, app_id: int, request_id: uuid.UUID, user_id: int
) -> tuple[str, str, str, str, int | None] | None:
    """(API key, sealed API secret, VAPID public key, sealed VAPID private key, the user's
    inbox row id of the send, if any): one round trip, at the claim."""
    inbox_id = (
        select(_notifications.c.id)
        .where(_notifications.c.request_id == request_id, _notifications.c.user_id == user_id)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                App.api_key,
                App.sealed_api_secret,
                App.vapid_public_key,
                App.sealed_vapid_private_key,
                inbox_id,
            ).where(App.id == app_id)
        )
    ).one_or_none()
    if row is None:
        return None
    key, secret, public, private, found = row
    return key, secret, public, private, int(found) if found is not None else None
