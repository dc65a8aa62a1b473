"""When to try again: a ladder of delays with full jitter, limits per channel."""

import random

from app.config import Settings
from app.delivery import catalogue

# A chat message a day late is noise; e-mail and webhooks keep trying for the full age.
_CHANNEL_MAX_AGE = {
    catalogue.SLACK: 6 * 3600.0,
    catalogue.DISCORD: 6 * 3600.0,
    catalogue.TEAMS: 6 * 3600.0,
}


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: uniform in [0, ladder step] (full jitter)."""
    ladder = settings.delivery_retry_delays
    cap = ladder[min(max(attempts, 1), len(ladder)) - 1]
    return random.uniform(0, cap)  # noqa: S311  (jitter, not a secret)


def max_age(settings: Settings, channel: str) -> float:
    return min(settings.delivery_max_age, _CHANNEL_MAX_AGE.get(channel, settings.delivery_max_age))
