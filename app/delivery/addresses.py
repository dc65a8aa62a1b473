"""Where a user's message goes on each channel, read from their profile.

email: `email`; webhook: `webhookUrl`; Slack, Discord, Teams: `slack.webhookUrl`,
`discord.webhookUrl`, `msTeams.webhookUrl` (or the flat `slackWebhookUrl`, …). Without one,
a chat or webhook message goes to the URL in the provider's config, if it has one."""

import re
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
