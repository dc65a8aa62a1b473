"""Forgetting a dead target: the provider said this address will never work again.

Done in the transaction that records the outcome, so a token is removed exactly when its
delivery is marked failed; the next send reaches only the live ones. Act only on the signals
each provider documents for a dead address (a 404/410 from a push service, FCM's
UNREGISTERED, APNs' Unregistered, Expo's DeviceNotRegistered, Twilio's 21610), never on a 5xx.
A phone number is not removed from the profile: it is marked opted out of the channel
(`phone_opt_outs`), which its owner can undo by opting back in."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import catalogue, opt_outs
from app.delivery.models import Delivery
from app.devices import repository as devices_repository
from app.users import repository as users_repository

log = logging.getLogger("herald.delivery")


async def forget(session: AsyncSession, delivery: Delivery) -> str:
    """Remove the delivery's target from where it was read; say what was done."""
    if delivery.channel == catalogue.MOBILE_PUSH and delivery.provider_kind and delivery.target:
        key = catalogue.TOKEN_KEYS.get(delivery.provider_kind, delivery.provider_kind)
        removed = await users_repository.remove_token(
            session, user_id=delivery.user_id, key=key, token=delivery.target
        )
        return f"token removed from `{key}.tokens`" if removed else "token already removed"
    if delivery.channel == catalogue.WEB_PUSH:
        dropped = await devices_repository.drop_subscription(
            session, user_id=delivery.user_id, endpoint=delivery.target_key
        )
        return "subscription removed" if dropped else "subscription already removed"
    if delivery.channel in (catalogue.SMS, catalogue.WHATSAPP) and delivery.target:
        added = await opt_outs.add(
            session,
            app_id=delivery.app_id,
            channel=delivery.channel,
            phone=delivery.target,
            provider=delivery.provider or "",
            reason="the provider refused the number as opted out",
        )
        done = "marked opted out" if added else "already opted out"
        return f"number {done} of {delivery.channel}"
    log.warning("delivery %s: no way to forget a %s target", delivery.id, delivery.channel)
    return "target kept"
