"""Accepting a send: validate, resolve recipients, and write the request, the inbox rows it
can write at once and the job for the rest, in the one transaction that answers 202."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import routing
from app.apps.models import App
from app.categories import repository as categories_repository
from app.delivery import service as delivery_service
from app.delivery.crypto import Keyring
from app.errors import BadRequest
from app.inbox import service as inbox_service
from app.kit.timefmt import utcnow
from app.queue.enqueue import enqueue
from app.sends import repository
from app.sends.group import Send
from app.sends.models import NotificationRequest, SendStatus
from app.sends.schemas import InlineRecipient, Recipient, SendRequest
from app.topics import repository as topics_repository
from app.users import repository as users_repository

FAN_OUT = "fan_out"


@dataclass(frozen=True)
class Limits:
    max_recipients: int
    inline_recipients: int


def recipients_of(body: SendRequest) -> dict[str, dict[str, Any]]:
    """identifier -> profile attributes to upsert (empty for a bare identifier), deduplicated."""
    listed: list[Recipient] = list(body.sendTo.recipients if body.sendTo else [])
    listed += body.recipients or []
    found: dict[str, dict[str, Any]] = {}
    for item in listed:
        if isinstance(item, InlineRecipient):
            attributes = dict(item.model_extra or {})
            found[item.identifier] = {**found.get(item.identifier, {}), **attributes}
        else:
            found.setdefault(item, {})
    return found


def check(body: SendRequest, *, limits: Limits) -> dict[str, dict[str, Any]]:
    errors: list[str] = []
    if not body.notification.title:
        errors.append(
            "notification.title is required (Herald sends inline content; it hosts no "
            "templates or workflows)"
        )
    recipients = recipients_of(body)
    topics = body.sendTo.topics if body.sendTo else []
    if not recipients and not topics:
        errors.append("sendTo must name at least one recipient or topic")
    if len(recipients) > limits.max_recipients:
        errors.append(f"at most {limits.max_recipients} recipients per request")
    if len(topics) > 100:
        errors.append("at most 100 topics per request")
    if body.sendAt is not None and body.sendAt.tzinfo is None:
        errors.append("sendAt must carry a time zone (ISO 8601, e.g. 2026-01-01T09:00:00Z)")
    if errors:
        raise BadRequest(errors)
    return recipients


def inbox_content(body: SendRequest, category_id: int | None) -> dict[str, Any]:
    n = body.notification
    data = {**(body.data or {}), **(n.data or {})}
    # Attachments are for e-mail; their base64 bodies do not belong in every inbox row.
    data.pop("attachments", None)
    return {
        "title": n.title,
        "message": n.message,
        "icon": n.icon,
        "url": n.url,
        "data": data or None,
        "blocks": n.blocks,
        "category_id": category_id,
        "tenant": n.tenantIdentifier or body.tenantIdentifier,
    }


async def channels_of(
    session: AsyncSession, app: App, body: SendRequest, *, web_push: bool
) -> tuple[str, ...]:
    """The channels this send may use: the app's that can deliver, narrowed by
    `override.channels`. `web_push`: this server can sign web push (HERALD_VAPID_SUBJECT)."""
    enabled = await delivery_service.enabled_channels(
        session, app_channels=list(app.channels), app_id=app.id, web_push=web_push
    )
    return routing.send_channels(enabled, body.override.channels if body.override else None)


async def plain(
    session: AsyncSession | None,
    *,
    app: App,
    body: SendRequest,
    limits: Limits,
    keyring: Keyring,
    web_push: bool,
) -> Send | None:
    """The send ready for a group commit (app/sends/group.py), or None when it needs more
    than its own writes: topics, a category (preferences), profile attributes, a schedule,
    an audience for the worker, or a channel beyond the inbox (deliveries and their jobs).
    Raises BadRequest as `accept` does. `session`: None when the app's channels are the
    inbox alone, which needs no provider read."""
    recipients = check(body, limits=limits)
    if (
        (body.sendTo is not None and body.sendTo.topics)
        or body.notification.category
        or body.category
        or any(recipients.values())
        or len(recipients) > limits.inline_recipients
    ):
        return None
    now = utcnow()
    if body.sendAt is not None and body.sendAt > now:
        return None
    override = body.override.channels if body.override else None
    channels = (
        routing.send_channels(app.channels, override)
        if session is None
        else await channels_of(session, app, body, web_push=web_push)
    )
    if channels != (routing.IN_APP,):
        return None
    workflow = body.notification.workflow
    return Send(
        app_id=app.id,
        request_id=uuid.uuid4(),
        payload=delivery_service.seal_send(
            keyring, body.model_dump(mode="json", exclude_unset=True)
        ),
        identifiers=tuple(recipients),
        content=inbox_content(body, None),
        cancellation_key=workflow.cancellationKey if workflow else None,
        workflow_identifier=workflow.identifier if workflow else None,
        created_at=now,
    )


async def accept(
    session: AsyncSession,
    *,
    app: App,
    body: SendRequest,
    limits: Limits,
    keyring: Keyring,
    web_push: bool,
) -> uuid.UUID:
    """Store the request; write small immediate audiences now and queue everything else."""
    app_id = app.id
    recipients = check(body, limits=limits)
    topic_identifiers = list(dict.fromkeys(body.sendTo.topics if body.sendTo else []))
    topic_ids = await topics_repository.ids_by_identifier(session, app_id, topic_identifiers)
    if unknown := [t for t in topic_identifiers if t not in topic_ids]:
        raise BadRequest(f"unknown topic: {', '.join(unknown)}")

    inline = {i: attrs for i, attrs in recipients.items() if attrs}
    await users_repository.upsert_profiles(session, app_id, inline)
    user_ids = await users_repository.ensure(session, app_id, list(recipients))

    category_identifier = body.notification.category or body.category
    category_id: int | None = None
    if category_identifier:
        category_id = (await categories_repository.ensure(session, app_id, category_identifier)).id

    now = utcnow()
    scheduled = body.sendAt is not None and body.sendAt > now
    channels = await channels_of(session, app, body, web_push=web_push)
    # Small explicit audiences are written now, so a send followed by a list sees them.
    write_now = bool(channels) and not scheduled and len(user_ids) <= limits.inline_recipients
    deferred_users = [] if write_now else list(user_ids.values())
    needs_worker = bool(channels) and (bool(deferred_users) or bool(topic_ids))

    workflow = body.notification.workflow
    request = NotificationRequest(
        id=uuid.uuid4(),
        app_id=app_id,
        # Provider overrides may carry API keys and passwords: stored sealed.
        payload=delivery_service.seal_send(
            keyring, body.model_dump(mode="json", exclude_unset=True)
        ),
        recipient_count=len(user_ids),
        status=_status(scheduled=scheduled and needs_worker, queued=needs_worker),
        send_at=body.sendAt if scheduled else None,
        user_ids=deferred_users,
        topic_ids=list(topic_ids.values()),
        category_id=category_id,
        cancellation_key=workflow.cancellationKey if workflow else None,
        workflow_identifier=workflow.identifier if workflow else None,
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, request)

    if write_now:
        routes = await routing.route(
            session,
            channels=channels,
            category_id=category_id,
            reached=[routing.Reach(u) for u in user_ids.values()],
        )
        await deliver(session, request, body, routes, created_at=now)
    if needs_worker:
        not_before = body.sendAt if scheduled else None
        await enqueue(session, FAN_OUT, {"requestId": str(request.id)}, not_before=not_before)
    return request.id


async def deliver(
    session: AsyncSession,
    request: NotificationRequest,
    body: SendRequest,
    routes: routing.Routes,
    *,
    created_at: datetime,
) -> int:
    """Hand each routed channel its users, in the caller's transaction: inbox rows, and a
    delivery with its job for every other channel. Returns the inbox rows written."""
    written = await inbox_service.deliver(
        session,
        app_id=request.app_id,
        request_id=request.id,
        user_ids=routes.users(routing.IN_APP),
        content=inbox_content(body, request.category_id),
        created_at=created_at,
    )
    await delivery_service.create(
        session,
        app_id=request.app_id,
        request_id=request.id,
        pairs=routes.pairs,
        notification={**inbox_content(body, None), "category": _category(body)},
        override=body.override.model_dump(mode="json", exclude_unset=True)
        if body.override
        else None,
        data={**(body.data or {}), **(body.notification.data or {})},
        created_at=created_at,
    )
    return written


def _category(body: SendRequest) -> str | None:
    return body.notification.category or body.category


def _status(*, scheduled: bool, queued: bool) -> SendStatus:
    if scheduled:
        return SendStatus.SCHEDULED
    return SendStatus.QUEUED if queued else SendStatus.DONE
