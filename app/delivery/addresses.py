"""Where a user's message goes on each channel, read from their profile and devices.

email: `email`; webhook: `webhookUrl`; Slack, Discord, Teams: `slack.webhookUrl`,
`discord.webhookUrl`, `msTeams.webhookUrl` (or the flat `slackWebhookUrl`, …). Without one,
a chat or webhook message goes to the URL in the provider's config, if it has one.
mobilePush: every token in `fcm.tokens`, `apns.tokens` and `expo.tokens`, each sent only
through a provider of its kind; webPush: every device's subscription; sms and whatsapp:
`phoneNumber` in E.164, unless that number opted out of the channel (it is then skipped). A
channel may so have several targets per user: one delivery each."""

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from app.delivery import catalogue

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_PROFILE_KEYS = {
    catalogue.WEBHOOK: ("webhookUrl", None),
    catalogue.SLACK: ("slack", "slackWebhookUrl"),
    catalogue.DISCORD: ("discord", "discordWebhookUrl"),
    catalogue.TEAMS: ("msTeams", "msTeamsWebhookUrl"),
}


@dataclass(frozen=True)
class Address:
    """A profile address (target), or none: then `reason` says why, unless the provider's
    own config may supply one (`from_provider`)."""

    target: str | None
    from_provider: bool = False
    reason: str | None = None
    # Only a provider of this kind can use the target (an FCM token goes through `fcm`).
    provider_kind: str | None = None
    # What makes the target unique among the user's (default: the target itself).
    key: str | None = None

    @property
    def target_key(self) -> str:
        return self.key if self.key is not None else (self.target or "")


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAX_TARGETS = 20  # per user and channel: a profile listing thousands of tokens is a mistake


def addresses(
    channel: str,
    profile: dict[str, Any],
    *,
    provider_has_url: bool,
    provider_kinds: Collection[str] = (),
    subscriptions: Sequence[dict[str, Any]] = (),
    opted_out: Collection[str] = (),
) -> list[Address]:
    """Every target of the user on `channel`: at least one Address, which says why there is
    none when there is none. `provider_kinds` are the channel's enabled provider ids;
    `subscriptions` the user's web-push subscriptions; `opted_out` the numbers that opted out
    of this channel."""
    if channel == catalogue.MOBILE_PUSH:
        return _tokens(profile, provider_kinds)
    if channel == catalogue.WEB_PUSH:
        return _subscriptions(subscriptions)
    if channel in (catalogue.SMS, catalogue.WHATSAPP):
        found = phone(profile)
        if found.target is not None and found.target in opted_out:
            return [Address(None, reason=opted_out_reason(channel))]
        return [found]
    return [address(channel, profile, provider_has_url=provider_has_url)]


def _tokens(profile: dict[str, Any], provider_kinds: Collection[str]) -> list[Address]:
    found: list[Address] = []
    for kind, key in catalogue.TOKEN_KEYS.items():
        if kind not in provider_kinds:
            continue
        holder = profile.get(key)
        tokens = holder.get("tokens") if isinstance(holder, dict) else None
        if not isinstance(tokens, list):
            continue
        for token in dict.fromkeys(tokens):
            if isinstance(token, str) and 0 < len(token) <= 4096:
                found.append(Address(token, provider_kind=kind, key=f"{kind}:{token}"))
    if found:
        return found[:MAX_TARGETS]
    keys = ", ".join(
        f"`{catalogue.TOKEN_KEYS[k]}.tokens`" for k in catalogue.TOKEN_KEYS if k in provider_kinds
    )
    return [Address(None, reason=f"no push token in the profile ({keys or 'none enabled'})")]


def _subscriptions(subscriptions: Sequence[dict[str, Any]]) -> list[Address]:
    found: list[Address] = []
    for sub in subscriptions:
        endpoint = sub.get("endpoint")
        if isinstance(endpoint, str) and endpoint.startswith("https://"):
            found.append(Address(json.dumps(sub, separators=(",", ":")), key=endpoint))
    if found:
        return list({a.key: a for a in found}.values())[:MAX_TARGETS]
    return [
        Address(
            None,
            reason="no web-push subscription (POST /v3/devices/{deviceId}/webPushSubscription)",
        )
    ]


def phone(profile: dict[str, Any]) -> Address:
    number = profile.get("phoneNumber")
    if isinstance(number, str) and _E164.match(number.strip()):
        return Address(number.strip())
    why = "invalid" if number else "no"
    return Address(
        None, reason=f"{why} phone number in the profile (key `phoneNumber`, E.164: +14155550100)"
    )


def opted_out_reason(channel: str) -> str:
    return (
        f"the phone number opted out of {channel} (the provider reported STOP, e.g. Twilio "
        "21610); it is reached again once it opts back in (replies START)"
    )


def _url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 4096:
        return value
    return None


def address(channel: str, profile: dict[str, Any], *, provider_has_url: bool) -> Address:
    if channel == catalogue.EMAIL:
        email = profile.get("email")
        if isinstance(email, str) and _EMAIL.match(email.strip()) and len(email) <= 320:
            return Address(email.strip())
        why = "invalid" if email else "no"
        return Address(None, reason=f"{why} e-mail address in the profile (key `email`)")
    nested, flat = _PROFILE_KEYS[channel]
    if flat is None:
        found = _url(profile.get(nested))
        keys = f"`{nested}`"
    else:
        inner = profile.get(nested)
        found = _url(inner.get("webhookUrl")) if isinstance(inner, dict) else None
        found = found or _url(profile.get(flat))
        keys = f"`{nested}.webhookUrl` or `{flat}`"
    if found:
        return Address(found)
    if provider_has_url:
        return Address(None, from_provider=True)
    return Address(
        None, reason=f"no {channel} webhook URL in the profile ({keys}) or the provider config"
    )
