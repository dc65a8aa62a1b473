"""Rules for providers and for creating deliveries (called from the send pipeline)."""

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import addresses, catalogue, content, opt_outs, repository
from app.delivery.crypto import Keyring
from app.delivery.models import DeliveryStatus, Provider
from app.delivery.schemas import ProviderCreate, ProviderRead, ProviderUpdate
from app.devices import repository as devices_repository
from app.errors import BadRequest, Conflict, NotFound
from app.kit.timefmt import utcnow
from app.queue.enqueue import enqueue_many
from app.users import repository as users_repository

DELIVER = "deliver"
# One job for up to catalogue.BATCH_SIZES[kind] deliveries of a send: {"ids": [...]}.
DELIVER_BATCH = "deliver_batch"
IN_APP = "inApp"
SET_SECRETS = "$secrets"


def _context(app_id: int) -> str:
    # Binds sealed config to its app: a row copied into another tenant does not open.
    return f"provider config of app {app_id}"


def config_of(keyring: Keyring, provider: Provider) -> dict[str, Any]:
    """The provider's whole config, secrets opened."""
    config = {k: v for k, v in provider.config.items() if k != SET_SECRETS}
    if provider.secrets:
        config.update(json.loads(keyring.open(provider.secrets, context=_context(provider.app_id))))
    return config


def _store(
    keyring: Keyring, provider: Provider, spec: catalogue.Spec, config: dict[str, Any]
) -> None:
    clear = {k: v for k, v in config.items() if k not in spec.secret_names}
    hidden = {k: v for k, v in config.items() if k in spec.secret_names and v not in (None, "")}
    # Which secrets are set is not secret: kept in clear, so nothing needs the key to know.
    provider.config = {**clear, SET_SECRETS: sorted(hidden)} if hidden else clear
    provider.secrets = (
        keyring.seal(json.dumps(hidden), context=_context(provider.app_id)) if hidden else None
    )


def read(provider: Provider) -> ProviderRead:
    """The provider as the admin API shows it: secrets masked, never returned."""
    spec = catalogue.SPECS[provider.provider]
    shown = {k: v for k, v in provider.config.items() if k != SET_SECRETS}
    shown.update({k: catalogue.MASK for k in provider.config.get(SET_SECRETS, [])})
    return ProviderRead.of(provider, catalogue.masked(spec, shown))


def has_key(provider: Provider, name: str) -> bool:
    return name in provider.config or name in provider.config.get(SET_SECRETS, [])


async def create_provider(
    session: AsyncSession, keyring: Keyring, *, app_id: int, channel: str, body: ProviderCreate
) -> Provider:
    spec = catalogue.spec_for(channel, body.provider)
    config = catalogue.normalise(spec, body.config)
    if gaps := catalogue.missing(spec, config):
        raise BadRequest([f"config.{k} is required for {spec.provider}" for k in gaps])
    now = utcnow()
    provider = Provider(
        app_id=app_id,
        channel=channel,
        provider=spec.provider,
        name=body.name or spec.provider,
        priority=body.priority,
        enabled=body.enabled,
        rate_limit=body.rateLimit,
        concurrency=body.concurrency,
        created_at=now,
        updated_at=now,
    )
    _store(keyring, provider, spec, config)
    if spec.provider != catalogue.DEFAULT_WEBPUSH:
        return await repository.add_provider(session, provider)
    try:
        async with session.begin_nested():
            return await repository.add_provider(session, provider)
    except IntegrityError:  # the unique index: one per app
        raise Conflict(
            "the app already has its default_webpush provider (Herald adds it on first use): "
            "change it with PATCH /admin/apps/{appId}/providers/{providerId}"
        ) from None


async def get_provider(session: AsyncSession, *, app_id: int, provider_id: int) -> Provider:
    provider = (
        await repository.provider_of_app(session, app_id, provider_id)
        if 0 < provider_id < 2**63
        else None
    )
    if provider is None:
        raise NotFound("Provider not found")
    return provider


async def update_provider(
    session: AsyncSession, keyring: Keyring, *, provider: Provider, body: ProviderUpdate
) -> Provider:
    spec = catalogue.SPECS[provider.provider]
    if body.config is not None:
        merged = config_of(keyring, provider)
        for name, value in body.config.items():
            key = spec.key(name)
            if key is not None and value is None:
                merged.pop(key.name, None)
        merged.update(catalogue.normalise(spec, body.config))
        if gaps := catalogue.missing(spec, merged):
            raise BadRequest([f"config.{k} is required for {spec.provider}" for k in gaps])
        _store(keyring, provider, spec, merged)
    fields = body.model_fields_set
    if body.name is not None:
        provider.name = body.name
    if body.priority is not None:
        provider.priority = body.priority
    if body.enabled is not None:
        provider.enabled = body.enabled
    if "rateLimit" in fields:
        provider.rate_limit = body.rateLimit
        provider.next_slot_at = None
    if "concurrency" in fields:
        provider.concurrency = body.concurrency
    provider.updated_at = utcnow()
    await session.flush()
    return provider


async def enabled_channels(
    session: AsyncSession, *, app_channels: Sequence[str], app_id: int, web_push: bool
) -> list[str]:
    """The app's channels that can deliver: in its `channels` and, but for inApp, served by
    an enabled provider. webPush needs no row: it is on when this server can sign web push
    (`web_push`: HERALD_VAPID_SUBJECT is set) unless the app's default_webpush is disabled."""
    if all(c == IN_APP for c in app_channels):
        return list(dict.fromkeys(app_channels))  # the inbox needs no provider: no query
    served = await repository.enabled_channels(session, app_id)
    if not web_push:
        served.discard(catalogue.WEB_PUSH)
    elif (
        catalogue.WEB_PUSH in app_channels
        and catalogue.WEB_PUSH not in served
        and not await repository.has_provider(session, app_id, catalogue.DEFAULT_WEBPUSH)
    ):
        served.add(catalogue.WEB_PUSH)  # Engagespot's default provider: on until turned off
    return [c for c in dict.fromkeys(app_channels) if c == IN_APP or c in served]


def seal_send(keyring: Keyring, payload: dict[str, Any]) -> dict[str, Any]:
    """Check a send's channel content and seal its provider overrides before it is stored."""
    override = payload.get("override")
    notification = payload.get("notification") or {}
    data = {**(payload.get("data") or {}), **(notification.get("data") or {})}
    content.check(
        channel_override=(override or {}).get("channel") if isinstance(override, dict) else None,
        data=data,
        override=override if isinstance(override, dict) else None,
    )
    if isinstance(override, dict) and content.provider_overrides(override):
        payload = {**payload, "override": content.seal_provider_overrides(keyring, override)}
    return payload


async def create(
    session: AsyncSession,
    *,
    app_id: int,
    request_id: uuid.UUID,
    pairs: Sequence[tuple[int, str]],
    notification: dict[str, Any],
    override: dict[str, Any] | None,
    data: dict[str, Any] | None,
    created_at: datetime,
) -> int:
    """Write a delivery per routed (user, channel) beyond the inbox and a job for each, in
    the caller's transaction. A user without an address gets a `skipped` row saying why.
    A re-run batch writes nothing twice. Returns the deliveries written."""
    pairs = [(u, c) for u, c in pairs if c != IN_APP]
    if not pairs:
        return 0
    providers = await repository.enabled_providers(session, app_id)
    by_channel: dict[str, list[Provider]] = {}
    for p in providers:
        by_channel.setdefault(p.channel, []).append(p)
    if catalogue.WEB_PUSH not in by_channel and any(c == catalogue.WEB_PUSH for _, c in pairs):
        # Routed to web push with no row yet: the implicit default provider becomes a row,
        # which carries the engine's gates, pauses and delivery log like any other.
        default = await repository.ensure_default_webpush(session, app_id, created_at)
        if default.enabled:
            by_channel[catalogue.WEB_PUSH] = [default]
    profiles = await users_repository.profiles(session, list({u for u, _ in pairs}))
    web_push_users = [u for u, c in pairs if c == catalogue.WEB_PUSH]
    subscriptions = await devices_repository.subscriptions_of(session, web_push_users)
    stopped = await _opted_out(session, app_id, pairs, profiles)
    channel_override = (override or {}).get("channel")
    channel_override = channel_override if isinstance(channel_override, dict) else None
    sealed = content.provider_overrides(override)
    refs: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for user_id, channel in pairs:
        if channel not in catalogue.CHANNELS_WITH_PROVIDERS or user_id not in profiles:
            continue  # webPush, … have no provider kinds in Herald yet
        if channel not in refs:
            rendered = content.render(
                channel, notification, channel_override=channel_override, data=data
            )
            refs[channel] = await repository.message_ref(
                session,
                request_id=request_id,
                channel=channel,
                content=rendered,
                overrides=json.dumps(sealed) if sealed else None,
            )
        identifier, profile = profiles[user_id]
        candidates = by_channel.get(channel, [])
        has_url = any(
            (key := catalogue.SPECS[p.provider].url_key) is not None and has_key(p, key)
            for p in candidates
        )
        for where in addresses.addresses(
            channel,
            profile,
            provider_has_url=has_url,
            provider_kinds={p.provider for p in candidates},
            subscriptions=subscriptions.get(user_id, ()),
            opted_out=stopped.get(channel, set()),
        ):
            skipped = where.target is None and not where.from_provider
            rows.append(
                {
                    "app_id": app_id,
                    "request_id": request_id,
                    "message_ref": refs[channel],
                    "user_id": user_id,
                    "recipient": identifier,
                    "channel": channel,
                    "target": where.target,
                    "target_key": where.target_key,
                    "provider_kind": where.provider_kind,
                    "status": DeliveryStatus.SKIPPED if skipped else DeliveryStatus.QUEUED,
                    "last_error": where.reason if skipped else None,
                    "message_id": _message_id(channel, candidates, channel_override),
                    "next_attempt_at": None if skipped else created_at,
                    "created_at": created_at,
                    "updated_at": created_at,
                }
            )
    written = await repository.insert_deliveries(session, rows)
    queued = [(i, k) for i, s, k in written if s is DeliveryStatus.QUEUED]
    singles = [i for i, k in queued if k not in catalogue.BATCH_SIZES]
    await enqueue_many(session, DELIVER, [{"id": i} for i in singles])
    for kind, size in catalogue.BATCH_SIZES.items():
        batched = [i for i, k in queued if k == kind]
        chunks = [batched[n : n + size] for n in range(0, len(batched), size)]
        await enqueue_many(session, DELIVER_BATCH, [{"ids": c} for c in chunks])
    return len(written)


async def _opted_out(
    session: AsyncSession,
    app_id: int,
    pairs: Sequence[tuple[int, str]],
    profiles: dict[int, tuple[str, Any]],
) -> dict[str, set[str]]:
    """channel -> the batch's phone numbers that opted out of it (one query per phone channel)."""
    out: dict[str, set[str]] = {}
    for channel in (catalogue.SMS, catalogue.WHATSAPP):
        phones = {
            found.target
            for user_id, c in pairs
            if c == channel
            and user_id in profiles
            and (found := addresses.phone(profiles[user_id][1])).target is not None
        }
        if phones:
            out[channel] = await opt_outs.opted_out(
                session, app_id=app_id, channel=channel, phones=phones
            )
    return out


def _message_id(
    channel: str, providers: Sequence[Provider], channel_override: dict[str, Any] | None
) -> str:
    token = uuid.uuid4().hex
    if channel != catalogue.EMAIL:
        return f"msg_{token}"
    sender = ((channel_override or {}).get("email") or {}).get("from")
    for p in providers:
        sender = sender or p.config.get("FROM_EMAIL") or p.config.get("fromEmail")
    domain = str(sender).rsplit("@", 1)[-1] if sender and "@" in str(sender) else "herald.invalid"
    return f"<{token}.{secrets.token_hex(4)}@{domain}>"
