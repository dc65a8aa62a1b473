"""One delivery attempt: claim the row, send through the chosen provider, record the outcome.

Each step is its own short transaction, and no transaction is open while a message is on the
wire. The claim is a compare-and-set under a row lock (status queued/retrying → sending,
attempts + 1); the outcome is written only by the attempt that holds the claim.

Crash policy (a row found in `sending` means its worker died mid-attempt):
- webhook, slack, discord, chat (Teams): sent again. The receiver sees the same webhook-id /
  message, so a duplicate is detectable and harmless.
- email, sms, whatsapp, mobilePush, webPush (catalogue.AT_MOST_ONCE): sent again only if the
  worker died before the message was handed over (before SMTP DATA, or before the provider
  request left: the sender calls `mark_data` right before that point). Otherwise `unknown`:
  it may have arrived, and a second copy is the failure users hate most (and, for SMS, costs
  money).

Batch providers (Expo, catalogue.BATCH_SIZES) take up to 100 messages per request: their
deliveries come in jobs of many ids (`run_batch`). Each is claimed and recorded exactly as
above, in one transaction per step for the whole batch; the batch is marked handed over in
one statement right before its request; deliveries to try again stay one batch job."""

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apps import sealing
from app.config import Settings
from app.delivery import catalogue, content, crypto, receipts, repository, retry, service, targets
from app.delivery.channels import apns, email_api, expo, fcm, hooks, sms_apis, smtp, twilio, webpush
from app.delivery.channels.base import Attempt, Sender, WebPushFacts
from app.delivery.http import Client
from app.delivery.models import Delivery, DeliveryStatus, Provider
from app.delivery.outcome import Outcome, Result
from app.errors import AppError
from app.kit.timefmt import iso
from app.queue.enqueue import enqueue

log = logging.getLogger("herald.delivery")

SENDERS: dict[str, Sender] = {
    "smtp_email": smtp.send,
    "sendgrid_email": email_api.sendgrid,
    "mailgun": email_api.mailgun,
    "postmark_email": email_api.postmark,
    "default_webhook": hooks.webhook,
    "slack": hooks.slack,
    "discord": hooks.discord,
    "ms_teams": hooks.teams,
    # SMS and WhatsApp
    "twilio_sms": twilio.send,
    "twilio_whatsapp": twilio.send,
    "plivo_sms": sms_apis.plivo,
    "textlocal_sms": sms_apis.textlocal,
    # -- web push
    catalogue.DEFAULT_WEBPUSH: webpush.send,
    # Mobile push (expo also has a batch sender below; this one sends a batch of one).
    "fcm": fcm.send,
    "apns": apns.send,
    "expo": expo.send,
}


class BatchSender(Protocol):
    async def __call__(
        self, attempts: Sequence[Attempt], mark_data: Callable[[], Awaitable[None]]
    ) -> list[Outcome]: ...


# Providers that take many messages per request (catalogue.BATCH_SIZES): every delivery of
# theirs goes through run_batch, and `AFTER_BATCH` runs in the transaction that records it.
BATCH_SENDERS: dict[str, BatchSender] = {"expo": expo.send_batch}
AFTER_BATCH = {"expo": receipts.schedule}
# How long an attempt waits for its provider's concurrency gate before it steps aside.
GATE_WAIT = 0.25
# A rate-limit slot this close is waited for in-process; a later one reschedules the job.
SLOT_WAIT = timedelta(milliseconds=50)


@dataclass(frozen=True)
class Plan:
    provider_id: int
    concurrency: int
    provider: str = ""


@dataclass
class Marker:
    marked: bool = False
    # The claim's attempt number: a mark for an older claim must not land.
    attempts: int = 0


async def _until(due: float) -> None:
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _now(session: AsyncSession) -> datetime:
    now = await session.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


def _entry(
    now: datetime, provider: Provider | None, outcome: str, error: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "at": iso(now),
        "provider": provider.provider if provider else None,
        "providerId": provider.id if provider else None,
        "outcome": outcome,
        "error": error[:1000] if error else None,
        **{k: v for k, v in extra.items() if v is not None},
    }


async def _candidates(session: AsyncSession, delivery: Delivery) -> list[Provider]:
    """The enabled providers that may carry this delivery, in the order they are tried."""
    providers = await repository.providers_of_channel(
        session, delivery.app_id, delivery.channel, enabled_only=True
    )
    if delivery.provider_kind is None:
        return providers
    return [p for p in providers if p.provider == delivery.provider_kind]


async def _web_push_facts(
    session: AsyncSession, keyring: crypto.Keyring, delivery: Delivery
) -> WebPushFacts | None:
    if delivery.channel != catalogue.WEB_PUSH:
        return None
    found = await repository.web_push_facts(
        session, app_id=delivery.app_id, request_id=delivery.request_id, user_id=delivery.user_id
    )
    if found is None:
        return None
    key, secret, public, private, inbox_id = found
    # Sealed at rest (app/apps/sealing.py): a key that cannot open them is a config error.
    return WebPushFacts(
        key,
        sealing.open_value(keyring, key, secret),
        public,
        sealing.open_value(keyring, key, private),
        inbox_id,
    )


def _pick(delivery: Delivery, providers: list[Provider]) -> Provider:
    for p in providers:
        if p.id == delivery.provider_id:
            return p
    return providers[0]


@dataclass
class Later:
    """Deliveries of a batch to be tried again, kept together in one batch job."""

    deliveries: list[Delivery] = field(default_factory=list)
    at: datetime | None = None

    async def enqueue(self, session: AsyncSession) -> None:
        if self.at is None:
            return
        for delivery in self.deliveries:
            delivery.next_attempt_at = self.at
        await session.flush()
        ids = [d.id for d in self.deliveries]
        await enqueue(session, service.DELIVER_BATCH, {"ids": ids}, not_before=self.at)


async def _reschedule(
    session: AsyncSession, delivery: Delivery, at: datetime, later: Later | None = None
) -> None:
    """Move the delivery's next attempt to `at`, with the job that will make it (or, for a
    batch, the batch's job: at the latest of its deliveries' times)."""
    delivery.next_attempt_at = at
    if later is not None:
        later.deliveries.append(delivery)
        later.at = max(later.at or at, at)
        return
    await session.flush()
    await enqueue(session, service.DELIVER, {"id": delivery.id}, not_before=at)


def _finish(delivery: Delivery, status: DeliveryStatus, error: str | None, now: datetime) -> None:
    delivery.status = status
    delivery.last_error = error[:2000] if error else None
    delivery.phase = None
    delivery.next_attempt_at = None
    delivery.slot_at = None
    delivery.updated_at = now


class Engine:
    """Delivers in one worker process: its HTTP pool and per-provider gates are its own."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.keyring = crypto.keyring(settings)
        self.http = Client(
            allow_private=settings.allow_private_targets, timeout=settings.delivery_http_timeout
        )
        self._gates: dict[tuple[int, int], asyncio.Semaphore] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    def _gate(self, plan: Plan) -> asyncio.Semaphore:
        key = (plan.provider_id, plan.concurrency)
        if key not in self._gates:
            self._gates[key] = asyncio.Semaphore(plan.concurrency)
        return self._gates[key]

    def _default_concurrency(self) -> int:
        # By default one provider may hold half of this process's delivery slots, so a slow
        # one leaves room for the others.
        return max(1, self.settings.delivery_concurrency // 2)

    async def run(self, delivery_id: int) -> None:
        """Make the delivery's next attempt, if it is due."""
        async with self.sessionmaker() as session:
            plan = await self._plan(session, delivery_id)
        if plan is None:
            return
        if plan.provider in BATCH_SENDERS:
            await self._run_batch(plan, [delivery_id])
            return
        gate = self._gate(plan)
        try:
            await asyncio.wait_for(gate.acquire(), GATE_WAIT)
        except TimeoutError:
            # The provider is busy in this process: step aside rather than hold a slot.
            async with self.sessionmaker.begin() as session:
                await self._step_aside(session, delivery_id)
            return
        try:
            marker = Marker()
            async with self.sessionmaker.begin() as session:
                claimed = await self._claim(session, delivery_id, marker)
            if claimed is None:
                return
            attempt, due = claimed
            await _until(due)
            started = time.monotonic()
            outcome = await self._send(attempt)
            duration = int((time.monotonic() - started) * 1000)
            async with self.sessionmaker.begin() as session:
                await self._record(
                    session, attempt, outcome, marked=marker.marked, duration_ms=duration
                )
        finally:
            gate.release()

    async def _plan(self, session: AsyncSession, delivery_id: int) -> Plan | None:
        delivery = await repository.delivery(session, delivery_id)
        if delivery is None or delivery.status.final:
            return None
        providers = await _candidates(session, delivery)
        if not providers:
            return Plan(0, 1)
        provider = _pick(delivery, providers)
        return Plan(
            provider.id, provider.concurrency or self._default_concurrency(), provider.provider
        )

    async def run_batch(self, delivery_ids: Sequence[int]) -> None:
        """Make the next attempt of each due delivery, together: one request per provider
        config for a batch provider (Expo). Each delivery is still claimed on its own (a
        compare-and-set) and gets its own outcome."""
        async with self.sessionmaker() as session:
            for delivery_id in delivery_ids:
                plan = await self._plan(session, delivery_id)
                if plan is not None:
                    break
            else:
                return
        await self._run_batch(plan, delivery_ids)

    async def _run_batch(self, plan: Plan, delivery_ids: Sequence[int]) -> None:
        gate = self._gate(plan)
        try:
            await asyncio.wait_for(gate.acquire(), GATE_WAIT)
        except TimeoutError:
            async with self.sessionmaker.begin() as session:
                await self._step_aside_batch(session, delivery_ids)
            return
        try:
            claimed: list[tuple[Attempt, Marker]] = []
            due = 0.0
            async with self.sessionmaker.begin() as session:
                paused = Later()
                # Rows another transaction holds are being handled by their own job.
                for delivery_id in await repository.lock_free(session, delivery_ids):
                    marker = Marker()
                    got = await self._claim(session, delivery_id, marker, paused)
                    if got is not None:
                        claimed.append((got[0], marker))
                        due = max(due, got[1])
                await paused.enqueue(session)
            if not claimed:
                return
            await _until(due)
            groups: dict[tuple[str, str], list[tuple[Attempt, Marker]]] = {}
            for attempt, marker in claimed:
                fingerprint = hashlib.sha256(
                    json.dumps(attempt.config, sort_keys=True, default=str).encode()
                ).hexdigest()
                groups.setdefault((attempt.provider, fingerprint), []).append((attempt, marker))
            started = time.monotonic()
            results = await asyncio.gather(*(self._send_group(g) for g in groups.values()))
            duration = int((time.monotonic() - started) * 1000)
            async with self.sessionmaker.begin() as session:
                done: dict[str, list[tuple[Attempt, Outcome]]] = {}
                again = Later()
                for group, outcomes in zip(groups.values(), results, strict=True):
                    for (attempt, marker), outcome in zip(group, outcomes, strict=True):
                        await self._record(
                            session,
                            attempt,
                            outcome,
                            marked=marker.marked,
                            duration_ms=duration,
                            later=again,
                        )
                        done.setdefault(attempt.provider, []).append((attempt, outcome))
                await again.enqueue(session)
                for provider, pairs in done.items():
                    if (after := AFTER_BATCH.get(provider)) is not None:
                        await after(session, self.settings, pairs)
        finally:
            gate.release()

    async def _send_group(self, group: list[tuple[Attempt, Marker]]) -> list[Outcome]:
        """Send attempts that share a provider and its config, marking them all handed over
        in one statement right before the request."""
        attempts = [a for a, _ in group]
        sender = BATCH_SENDERS.get(attempts[0].provider)
        if sender is None:
            return [await self._send(a) for a in attempts]

        async def mark_data() -> None:
            async with self.sessionmaker.begin() as marking:
                await repository.mark_phases(
                    marking, [(a.delivery_id, m.attempts) for a, m in group], "data"
                )
            for _, marker in group:
                marker.marked = True

        try:
            outcomes = await sender(attempts, mark_data)
        except Exception as exc:  # a bug must cost one attempt, not the deliveries
            log.exception("batch of %s through %s raised", len(attempts), attempts[0].provider)
            return [Outcome(Result.TRANSIENT, f"internal error: {type(exc).__name__}")] * len(
                attempts
            )
        assert len(outcomes) == len(attempts)
        return outcomes

    async def _step_aside_batch(self, session: AsyncSession, delivery_ids: Sequence[int]) -> None:
        """Put the batch back together, a moment later (so it stays one request)."""
        now = await _now(session)
        at = now + timedelta(seconds=random.uniform(0.2, 1.0))  # noqa: S311
        moved: list[int] = []
        for delivery_id in await repository.lock_free(session, delivery_ids):
            delivery = await repository.delivery(session, delivery_id, lock=True)
            if delivery is None or delivery.status.final:
                continue
            # A `sending` one (its worker died) goes along: its claim decides what it was.
            if delivery.status is not DeliveryStatus.SENDING:
                delivery.next_attempt_at = at
            moved.append(delivery_id)
        await session.flush()
        if moved:
            await enqueue(session, service.DELIVER_BATCH, {"ids": moved}, not_before=at)

    async def _step_aside(self, session: AsyncSession, delivery_id: int) -> None:
        delivery = await repository.delivery(session, delivery_id, lock=True)
        if delivery is None or delivery.status not in (
            DeliveryStatus.QUEUED,
            DeliveryStatus.RETRYING,
        ):
            return
        now = await _now(session)
        await _reschedule(session, delivery, now + timedelta(seconds=random.uniform(0.2, 1.0)))  # noqa: S311

    async def _claim(
        self, session: AsyncSession, delivery_id: int, marker: Marker, later: Later | None = None
    ) -> tuple[Attempt, float] | None:
        delivery = await repository.delivery(session, delivery_id, lock=True)
        if delivery is None or delivery.status.final:
            return None
        now = await _now(session)
        if delivery.status is DeliveryStatus.SENDING:
            if not self._recover(delivery, now):
                return None
        elif delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None  # an early copy of the job: the one for next_attempt_at will come
        providers = await _candidates(session, delivery)
        if not providers:
            kind = f" of kind {delivery.provider_kind}" if delivery.provider_kind else ""
            reason = f"no enabled provider{kind} for the {delivery.channel} channel"
            delivery.log = [*delivery.log, _entry(now, None, "failed", reason)]
            _finish(delivery, DeliveryStatus.FAILED, reason, now)
            return None
        provider = _pick(delivery, providers)
        if provider.paused_until is not None and provider.paused_until > now:
            delivery.provider_id = provider.id
            await _reschedule(session, delivery, provider.paused_until, later)
            return None
        # When the send may go, on this process's monotonic clock: the claim commits before
        # anyone sleeps, and the commit's own time must not eat into the spacing.
        due = time.monotonic()
        if provider.rate_limit:
            if delivery.slot_at is None or delivery.slot_at < now - timedelta(minutes=1):
                reserved = await repository.reserve_slot(session, provider.id)
                if reserved is not None:
                    slot, ahead = reserved
                    if ahead > SLOT_WAIT.total_seconds():
                        delivery.slot_at = slot
                        delivery.provider_id = provider.id
                        await _reschedule(session, delivery, slot)
                        return None
                    due += max(0.0, ahead)
            elif delivery.slot_at > now + SLOT_WAIT:
                return None
        message = await repository.message(session, delivery.message_ref)
        try:
            config = service.config_of(self.keyring, provider)
            sealed = json.loads(message.overrides) if message and message.overrides else {}
            override = content.open_provider_override(self.keyring, sealed, provider.provider)
            facts = await _web_push_facts(session, self.keyring, delivery)
        except AppError as exc:
            delivery.provider_id = provider.id
            delivery.provider = provider.provider
            delivery.attempts += 1
            delivery.log = [*delivery.log, _entry(now, provider, Result.CONFIG.value, exc.args[0])]
            _finish(delivery, DeliveryStatus.FAILED, str(exc.args[0]), now)
            return None
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.provider_id = provider.id
        delivery.provider = provider.provider
        delivery.phase = None
        delivery.slot_at = None
        delivery.updated_at = now
        await session.flush()
        attempts = delivery.attempts
        marker.attempts = attempts
        sessionmaker = self.sessionmaker

        async def mark_data() -> None:
            async with sessionmaker.begin() as marking:
                await repository.mark_phase(marking, delivery_id, attempts, "data")
            marker.marked = True

        attempt = Attempt(
            delivery_id=delivery.id,
            request_id=str(delivery.request_id),
            message_id=delivery.message_id,
            recipient=delivery.recipient,
            channel=delivery.channel,
            target=delivery.target,
            provider=provider.provider,
            config=config,
            override=override,
            content=message.content if message else {},
            created_at=delivery.created_at,
            settings=self.settings,
            http=self.http,
            mark_data=mark_data,
            provider_id=provider.id,
            web_push=facts,
        )
        return attempt, due

    def _recover(self, delivery: Delivery, now: datetime) -> bool:
        """A row found in `sending`: its worker stopped mid-attempt. Resend, or mark unknown."""
        if delivery.channel in catalogue.AT_MOST_ONCE and delivery.phase == "data":
            reason = (
                "the worker stopped while the message was being handed to the provider; it may "
                "have been sent, so it is not sent again"
            )
            delivery.log = [*delivery.log, _entry(now, None, "unknown", reason)]
            _finish(delivery, DeliveryStatus.UNKNOWN, reason, now)
            log.warning("delivery %s: unknown after a crash during the hand-over", delivery.id)
            return False
        reason = "the worker stopped mid-attempt (nothing was handed over); trying again"
        delivery.log = [*delivery.log, _entry(now, None, "interrupted", reason)]
        delivery.status = DeliveryStatus.RETRYING
        delivery.phase = None
        return True

    async def _send(self, attempt: Attempt) -> Outcome:
        sender = SENDERS.get(attempt.provider)
        if sender is None:
            return Outcome(Result.CONFIG, f"Herald cannot send through {attempt.provider}")
        try:
            return await sender(attempt)
        except Exception as exc:  # a bug must cost one attempt, not the delivery
            log.exception("delivery %s through %s raised", attempt.delivery_id, attempt.provider)
            return Outcome(Result.TRANSIENT, f"internal error: {type(exc).__name__}")

    async def _record(
        self,
        session: AsyncSession,
        attempt: Attempt,
        outcome: Outcome,
        *,
        marked: bool,
        duration_ms: int,
        later: Later | None = None,
    ) -> None:
        delivery = await repository.delivery(session, attempt.delivery_id, lock=True)
        if delivery is None or delivery.status is not DeliveryStatus.SENDING:
            log.warning("delivery %s: outcome for an attempt no longer held", attempt.delivery_id)
            return
        now = await _now(session)
        providers = await _candidates(session, delivery)
        current = next((p for p in providers if p.id == delivery.provider_id), None)
        if current is None and delivery.provider_id is not None:
            current = await repository.fresh_provider(session, delivery.provider_id)
        result = outcome.result
        # After the hand-over point only a reply from the server says what happened.
        ambiguous = (
            delivery.channel in catalogue.AT_MOST_ONCE
            and marked
            and result in (Result.TRANSIENT, Result.UNREACHABLE)
            and outcome.status_code is None
            and outcome.handed_over is not False
        )
        label = "unknown" if ambiguous else result.value
        delivery.log = [
            *delivery.log,
            _entry(
                now,
                current,
                label,
                outcome.error,
                statusCode=outcome.status_code,
                durationMs=duration_ms,
            ),
        ]
        delivery.phase = None
        delivery.updated_at = now
        if result is Result.SENT:
            _finish(delivery, DeliveryStatus.SENT, outcome.error, now)
            delivery.sent_at = now
            delivery.provider_message_id = outcome.provider_message_id
            return
        if ambiguous:
            _finish(
                delivery,
                DeliveryStatus.UNKNOWN,
                f"{outcome.error} (after the message was handed over; not resent)",
                now,
            )
            return
        if outcome.dead_target:
            done = await targets.forget(session, delivery)
            _finish(delivery, DeliveryStatus.FAILED, f"{outcome.error} ({done})", now)
            return
        if result is Result.PERMANENT:
            _finish(delivery, DeliveryStatus.FAILED, outcome.error, now)
            return
        await self._retry_or_fail(session, delivery, current, providers, outcome, now, later)

    async def _retry_or_fail(
        self,
        session: AsyncSession,
        delivery: Delivery,
        current: Provider | None,
        providers: list[Provider],
        outcome: Outcome,
        now: datetime,
        later: Later | None = None,
    ) -> None:
        settings = self.settings
        others = [p for p in providers if current is None or p.id != current.id]
        if outcome.result is Result.CONFIG and not others:
            _finish(delivery, DeliveryStatus.FAILED, outcome.error, now)
            return
        age = (now - delivery.created_at).total_seconds()
        if delivery.attempts >= settings.delivery_max_attempts or age >= retry.max_age(
            settings, delivery.channel
        ):
            _finish(
                delivery,
                DeliveryStatus.FAILED,
                f"gave up after {delivery.attempts} attempts: {outcome.error}",
                now,
            )
            return
        fail_over = bool(others) and (
            outcome.result in (Result.CONFIG, Result.UNREACHABLE)
            or delivery.provider_attempts + 1 >= settings.delivery_failover_after
        )
        delay = retry.backoff(settings, delivery.attempts)
        if fail_over:
            index = providers.index(current) if current in providers else -1
            following = providers[(index + 1) % len(providers)]
            delivery.provider_id = following.id
            delivery.provider_attempts = 0
            if outcome.result in (Result.CONFIG, Result.UNREACHABLE):
                delay = 0.0  # the next provider has not failed: try it now
        else:
            delivery.provider_attempts += 1
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
            # A 429 from the provider's own endpoint pauses the provider for everyone; one
            # from a user's URL (webhookUrl, a chat URL in the profile) only this delivery.
            if current is not None and (
                delivery.channel == catalogue.EMAIL or delivery.target is None
            ):
                await repository.pause_provider(
                    session, current.id, now + timedelta(seconds=outcome.retry_after)
                )
        delivery.status = DeliveryStatus.RETRYING
        delivery.last_error = (outcome.error or outcome.result.value)[:2000]
        await _reschedule(session, delivery, now + timedelta(seconds=delay), later)
