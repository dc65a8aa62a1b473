"""Expo push receipts: a delayed job per batch asks Expo what became of its tickets.

A ticket only says Expo accepted the message; the receipt (ready within about 30 minutes,
kept for a day) says whether FCM or APNs took it. The job runs `HERALD_EXPO_RECEIPT_DELAY`
seconds after the batch was recorded (default 15 minutes) and records each receipt on its
own delivery, in one transaction with what it implies:
- ok: a `receipt` entry in the delivery's log; the delivery stays `sent`;
- DeviceNotRegistered: the token leaves `expo.tokens` and the delivery is `failed`;
- MessageRateExceeded: nothing reached the device, so the delivery is sent again later
  (`retrying`, with backoff) while attempts remain;
- MessageTooBig, InvalidCredentials, anything else: `failed` with Expo's message.
Receipts not ready yet, and a getReceipts request that fails (429, 5xx, no connection), are
asked again later, at most `ROUNDS` times in all."""

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.delivery import content, crypto, repository, retry, service, targets
from app.delivery.channels import expo
from app.delivery.channels.base import Attempt, provider_config
from app.delivery.http import Client
from app.delivery.models import Delivery, DeliveryStatus
from app.delivery.outcome import Outcome, Result
from app.errors import AppError
from app.kit.timefmt import iso
from app.queue.enqueue import enqueue

log = logging.getLogger("herald.delivery")

RECEIPTS = "expo_receipts"
ROUNDS = 3


async def _now(session: AsyncSession) -> datetime:
    now = await session.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


async def _enqueue(
    session: AsyncSession, settings: Settings, tickets: dict[str, int], round_: int, wait: float
) -> None:
    at = await _now(session) + timedelta(seconds=wait)
    await enqueue(session, RECEIPTS, {"tickets": tickets, "round": round_}, not_before=at)


async def schedule(
    session: AsyncSession, settings: Settings, pairs: list[tuple[Attempt, Outcome]]
) -> None:
    """Queue the receipts check of a recorded batch, in the transaction that recorded it."""
    tickets = {
        o.provider_message_id: a.delivery_id
        for a, o in pairs
        if o.result is Result.SENT and o.provider_message_id
    }
    if tickets:
        await _enqueue(session, settings, tickets, 0, settings.expo_receipt_delay)


def _entry(now: datetime, delivery: Delivery, error: str | None) -> dict[str, Any]:
    """A log entry `receipt`: without an error, FCM or APNs took the message."""
    return {
        "at": iso(now),
        "provider": delivery.provider,
        "providerId": delivery.provider_id,
        "outcome": "receipt",
        "error": error[:1000] if error else None,
    }


def _fail(delivery: Delivery, error: str, now: datetime) -> None:
    # Expo took the message (its ticket said ok) and then could not hand it on.
    delivery.status = DeliveryStatus.UNDELIVERED
    delivery.last_error = error[:2000]
    delivery.next_attempt_at = None
    delivery.updated_at = now


async def _apply(
    session: AsyncSession, settings: Settings, delivery_id: int, ticket: str, receipt: object
) -> None:
    delivery = await repository.delivery(session, delivery_id, lock=True)
    if (
        delivery is None
        or delivery.status is not DeliveryStatus.SENT
        or delivery.provider_message_id != ticket
    ):
        return  # sent again since, or deleted: this receipt is history
    now = await _now(session)
    receipt = receipt if isinstance(receipt, dict) else {}
    if receipt.get("status") == "ok":
        delivery.log = [*delivery.log, _entry(now, delivery, None)]
        delivery.updated_at = now
        return
    outcome = expo.of_error(receipt.get("details"), str(receipt.get("message") or ""), None)
    error = f"receipt: {outcome.error}"
    delivery.log = [*delivery.log, _entry(now, delivery, error)]
    if outcome.dead_target:
        done = await targets.forget(session, delivery)
        _fail(delivery, f"{error} ({done})", now)
    elif outcome.result is Result.TRANSIENT and delivery.attempts < settings.delivery_max_attempts:
        delivery.status = DeliveryStatus.RETRYING
        delivery.last_error = error[:2000]
        delivery.provider_message_id = None
        delivery.updated_at = now
        at = now + timedelta(seconds=retry.backoff(settings, delivery.attempts))
        delivery.next_attempt_at = at
        await session.flush()
        await enqueue(session, service.DELIVER, {"id": delivery.id}, not_before=at)
    else:
        _fail(delivery, error, now)


async def _configs(
    session: AsyncSession, keyring: crypto.Keyring, rows: list[Delivery]
) -> dict[tuple[int | None, int], dict[str, Any] | None]:
    """The Expo config of each (provider, message) the tickets came through."""
    out: dict[tuple[int | None, int], dict[str, Any] | None] = {}
    for row in rows:
        key = (row.provider_id, row.message_ref)
        if key in out:
            continue
        provider = (
            await repository.fresh_provider(session, row.provider_id) if row.provider_id else None
        )
        message = await repository.message(session, row.message_ref)
        try:
            config = service.config_of(keyring, provider) if provider else {}
            sealed = json.loads(message.overrides) if message and message.overrides else {}
            override = content.open_provider_override(keyring, sealed, "expo")
        except AppError as exc:
            log.warning("expo receipts: provider %s config unreadable: %s", row.provider_id, exc)
            out[key] = None
            continue
        out[key] = provider_config(config, override)
    return out


async def check(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    keyring: crypto.Keyring,
    http: Client,
    settings: Settings,
    payload: dict[str, Any],
) -> None:
    """Fetch and record the receipts of `payload["tickets"]` (ticket id → delivery id)."""
    tickets = {str(t): int(d) for t, d in dict(payload.get("tickets") or {}).items()}
    round_ = int(payload.get("round") or 0)
    async with sessionmaker() as session:
        rows = await repository.deliveries(session, list(set(tickets.values())))
        configs = await _configs(session, keyring, rows)
    by_id = {r.id: r for r in rows}
    groups: dict[tuple[int | None, int], list[str]] = {}
    for ticket, delivery_id in tickets.items():
        row = by_id.get(delivery_id)
        if row is not None and row.status is DeliveryStatus.SENT:
            groups.setdefault((row.provider_id, row.message_ref), []).append(ticket)
    again: dict[str, int] = {}
    retry_after = 0.0
    for key, ids in groups.items():
        config = configs.get(key)
        if config is None:
            continue
        for start in range(0, len(ids), expo.RECEIPTS_BATCH):
            chunk = ids[start : start + expo.RECEIPTS_BATCH]
            found = await expo.receipts(http, settings, config, chunk)
            if isinstance(found, Outcome):
                log.warning("expo receipts: %s", found.error)
                if found.result in (Result.TRANSIENT, Result.UNREACHABLE):
                    again.update({t: tickets[t] for t in chunk})
                    retry_after = max(retry_after, found.retry_after or 0.0)
                continue
            async with sessionmaker.begin() as session:
                for ticket in chunk:
                    if ticket in found:
                        await _apply(session, settings, tickets[ticket], ticket, found[ticket])
                    else:
                        again[ticket] = tickets[ticket]
    if not again:
        return
    if round_ + 1 >= ROUNDS:
        async with sessionmaker.begin() as session:
            for ticket, delivery_id in again.items():
                delivery = await repository.delivery(session, delivery_id, lock=True)
                if delivery is not None and delivery.provider_message_id == ticket:
                    note = f"no receipt after {ROUNDS} requests; the delivery stays sent"
                    now = await _now(session)
                    delivery.log = [*delivery.log, _entry(now, delivery, note)]
        return
    async with sessionmaker.begin() as session:
        wait = max(settings.expo_receipt_delay * (round_ + 2), retry_after)
        await _enqueue(session, settings, again, round_ + 1, wait)
