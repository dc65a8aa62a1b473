"""Accepting a send: validate, resolve recipients, write the request and inbox rows at once."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.categories import repository as categories_repository
from app.errors import BadRequest
from app.kit.timefmt import utcnow
from app.notifications import events, repository
from app.notifications.models import NotificationRequest
from app.notifications.schemas import InlineRecipient, Recipient, SendRequest
from app.preferences import repository as preferences_repository
from app.users import repository as users_repository

IN_APP = "inApp"


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


def check(body: SendRequest, *, max_recipients: int) -> dict[str, dict[str, Any]]:
    errors: list[str] = []
    if not body.notification.title:
        errors.append(
            "notification.title is required (Herald sends inline content; it hosts no "
            "templates or workflows)"
        )
    recipients = recipients_of(body)
    if body.sendTo and body.sendTo.topics:
        errors.append("sendTo.topics is not supported yet")
    if not recipients and not (body.sendTo and body.sendTo.topics):
        errors.append("sendTo.recipients must name at least one recipient")
    if len(recipients) > max_recipients:
        errors.append(f"at most {max_recipients} recipients per request")
    if body.sendAt is not None:
        if body.sendAt.tzinfo is None:
            errors.append("sendAt must carry a time zone (ISO 8601, e.g. 2026-01-01T09:00:00Z)")
        elif body.sendAt > utcnow():
            errors.append("sendAt in the future is not supported yet")
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


async def accept(
    session: AsyncSession, *, app_id: int, body: SendRequest, max_recipients: int
) -> uuid.UUID:
    """Store the request and write every recipient's inbox row in the caller's transaction."""
    recipients = check(body, max_recipients=max_recipients)
    inline = {i: attrs for i, attrs in recipients.items() if attrs}
    await users_repository.upsert_profiles(session, app_id, inline)
    user_ids = await users_repository.ensure(session, app_id, list(recipients))

    category_identifier = body.notification.category or body.category
    category_id: int | None = None
    if category_identifier:
        category_id = (await categories_repository.ensure(session, app_id, category_identifier)).id

    request_id = uuid.uuid4()
    now = utcnow()
    session.add(
        NotificationRequest(
            id=request_id,
            app_id=app_id,
            payload=body.model_dump(mode="json", exclude_unset=True),
            recipient_count=len(user_ids),
            created_at=now,
        )
    )
    await session.flush()

    channels = body.override.channels if body.override else None
    if channels is None or IN_APP in channels:
        targets = list(user_ids.values())
        if category_id is not None:
            muted = await preferences_repository.opted_out(
                session, category_id=category_id, channel=IN_APP, user_ids=targets
            )
            targets = [u for u in targets if u not in muted]
        written = await repository.fan_out(
            session,
            app_id=app_id,
            request_id=request_id,
            user_ids=targets,
            content=inbox_content(body, category_id),
            created_at=now,
        )
        await events.publish(session, "NEW_NOTIFICATION", written)
    return request_id
