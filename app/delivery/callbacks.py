"""Delivery callbacks: a provider reports what became of a message it accepted.

Twilio POSTs a form to the `StatusCallback` URL Herald gave it
(`<HERALD_PUBLIC_URL>/v3/providers/{id}/callback`), signed with `X-Twilio-Signature` over
that exact URL and the sorted form fields, keyed with the provider's auth token. A verified
callback moves the delivery it names (provider id + `MessageSid`) forward only:
sent → delivered | undelivered → read; a late `sent` after `delivered` changes nothing. Each
verified callback is written into the delivery's log. An inbound message (`SmsStatus=received`)
saying STOP or START opts its number out of, or back into, the channel.

The URL checked is HERALD_PUBLIC_URL + the request's path and query when that is set, else
the URL the request arrived at. `X-Forwarded-*` headers are not read: Herald built the URL
Twilio signs, so it needs no client's word for it (and behind a proxy, set HERALD_PUBLIC_URL)."""

import logging
import re
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.delivery import catalogue, opt_outs, repository, service, targets
from app.delivery.channels import twilio
from app.delivery.crypto import Keyring
from app.delivery.models import Delivery, DeliveryStatus, Provider
from app.errors import AppError, BadRequest, Forbidden, NotFound
from app.kit.timefmt import iso, utcnow

log = logging.getLogger("herald.delivery")

# What Twilio's MessageStatus means for a delivery Herald recorded as sent. `failed` after
# acceptance means Twilio never got it out: undelivered, as far as the recipient is concerned.
MOVES = {
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.UNDELIVERED,
    "read": DeliveryStatus.READ,
}
# A callback moves a delivery only to a higher rank: out-of-order reports never undo one.
RANK = {
    DeliveryStatus.SENT: 0,
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.UNDELIVERED: 1,
    DeliveryStatus.READ: 2,
}
# Twilio's default opt-out and opt-in keywords (an inbound message that is just one of them).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAX_FIELDS = 200


def checked_url(settings: Settings, *, path: str, query: str, received: str) -> str:
    """The URL the provider signed: HERALD_PUBLIC_URL + path (and query), or the URL the
    request arrived at."""
    if not settings.public_url:
        return received
    return settings.public_url.rstrip("/") + path + (f"?{query}" if query else "")


def form_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:
        raise BadRequest(f"the callback has more than {MAX_FIELDS} form fields") from None


async def _verified_provider(
    session: AsyncSession,
    keyring: Keyring,
    *,
    provider_id: int,
    url: str,
    fields: list[tuple[str, str]],
    signature: str | None,
) -> Provider:
    provider = await repository.provider_by_id(session, provider_id)
    if provider is None or provider.provider not in catalogue.CALLBACK_PROVIDERS:
        raise NotFound("Provider not found (or it takes no callbacks)")
    if not signature:
        raise Forbidden("X-Twilio-Signature is required")
    try:
        token = service.config_of(keyring, provider).get("TWILIO_AUTH_TOKEN")
    except AppError:
        log.warning("callback for provider %s: its auth token cannot be opened", provider.id)
        raise Forbidden(
            "the callback cannot be verified: the provider's secrets are unreadable"
        ) from None
    if not isinstance(token, str) or not twilio.verified(token, url, fields, signature):
        raise Forbidden("X-Twilio-Signature does not match this request")
    return provider


async def receive(
    session: AsyncSession,
    keyring: Keyring,
    *,
    provider_id: int,
    url: str,
    body: bytes,
    signature: str | None,
) -> str:
    """Verify a callback and apply it; say what it did (for the log)."""
    fields = form_fields(body)
    provider = await _verified_provider(
        session, keyring, provider_id=provider_id, url=url, fields=fields, signature=signature
    )
    values = dict(fields)
    status = (values.get("MessageStatus") or values.get("SmsStatus") or "").strip().lower()
    if status == "received":
        return await _inbound(session, provider, values)
    sid = values.get("MessageSid") or values.get("SmsSid")
    if not sid or not status:
        raise BadRequest("a status callback needs MessageSid and MessageStatus")
    delivery = await repository.by_provider_message(session, provider.id, sid)
    if delivery is None:
        raise NotFound("No delivery of this provider has this MessageSid")
    return await _apply(session, provider, delivery, status, values)


def _error(values: dict[str, str]) -> tuple[int | None, str | None]:
    raw = (values.get("ErrorCode") or "").strip()
    code = int(raw) if raw.isdigit() and len(raw) < 10 else None
    if code is None:
        return None, None
    detail = (values.get("ErrorMessage") or "").strip()[:300]
    return code, f"Twilio {code}: {detail}" if detail else f"Twilio {code}"


async def _apply(
    session: AsyncSession,
    provider: Provider,
    delivery: Delivery,
    status: str,
    values: dict[str, str],
) -> str:
    code, error = _error(values)
    target = MOVES.get(status)
    current = RANK.get(delivery.status)
    moves = target is not None and current is not None and RANK[target] > current
    reported = f"callback: {status[:32]}"
    outcome = reported if moves else f"{reported} (kept {delivery.status.value})"
    entry = {
        "at": iso(utcnow()),
        "provider": provider.provider,
        "providerId": provider.id,
        "outcome": outcome,
        "error": error,
    }
    if any(
        str(e.get("outcome", "")).partition(" (")[0] == reported and e.get("error") == error
        for e in delivery.log
    ):
        return "repeated callback: nothing to do"  # a replay of one already recorded
    delivery.log = [*delivery.log, {k: v for k, v in entry.items() if v is not None}]
    delivery.updated_at = utcnow()
    if not moves or target is None:
        return outcome
    delivery.status = target
    if target is DeliveryStatus.UNDELIVERED:
        delivery.last_error = error or f"the provider reported the message {status}"
        if code == twilio.OPTED_OUT:
            delivery.last_error += f" ({await targets.forget(session, delivery)})"
    await session.flush()
    return outcome


async def _inbound(session: AsyncSession, provider: Provider, values: dict[str, str]) -> str:
    """An inbound message: STOP opts its number out of the channel, START back in."""
    sender = (values.get("From") or "").strip()
    channel = catalogue.SMS
    if sender.startswith(twilio.WHATSAPP_PREFIX):
        channel, sender = catalogue.WHATSAPP, sender[len(twilio.WHATSAPP_PREFIX) :]
    if not _E164.match(sender):
        return "inbound message from an unknown number: ignored"
    kind = (values.get("OptOutType") or "").strip().upper()
    word = " ".join((values.get("Body") or "").split()).upper()
    if kind == "STOP" or (not kind and word in STOP_WORDS):
        await opt_outs.add(
            session,
            app_id=provider.app_id,
            channel=channel,
            phone=sender,
            provider=provider.provider,
            reason="the number replied STOP",
        )
        return f"a number opted out of {channel}"
    if kind == "START" or (not kind and word in START_WORDS):
        await opt_outs.remove(session, app_id=provider.app_id, channel=channel, phone=sender)
        return f"a number opted back into {channel}"
    return "inbound message: nothing to do"
