"""What one attempt came to, in the classes every channel maps its errors into."""

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from app.kit.timefmt import utcnow


class Result(StrEnum):
    SENT = "sent"
    # Worth retrying on this provider (timeouts, 408/429/5xx, SMTP 4xx).
    TRANSIENT = "transient"
    # The provider cannot be reached at all (refused, DNS): fail over at once.
    UNREACHABLE = "unreachable"
    # The provider's configuration is wrong (535, 401/403): fail over, never retry it.
    CONFIG = "config"
    # This message to this recipient will never go through (other 4xx, SMTP 5xx on RCPT).
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    result: Result
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    provider_message_id: str | None = None
    # False when the failure proves nothing left (a refused connection); None: unknown.
    handed_over: bool | None = None
    # The provider says the target (token, subscription) is gone for good: forget it.
    dead_target: bool = False

    @classmethod
    def sent(
        cls, provider_message_id: str | None = None, status_code: int | None = None
    ) -> "Outcome":
        return cls(Result.SENT, status_code=status_code, provider_message_id=provider_message_id)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (at - utcnow()).total_seconds()
    # Bounded: a hostile receiver must not park a delivery for a year.
    return min(max(seconds, 0.0), 86_400.0)


def of_http(status: int, body: str, *, retry_header: str | None) -> Outcome:
    """Classify an HTTP answer from a webhook or vendor API."""
    snippet = body[:300]
    if 200 <= status < 300:
        return Outcome.sent(status_code=status)
    error = f"HTTP {status}: {snippet}".strip()
    if status in (408, 425, 429) or status >= 500:
        return Outcome(Result.TRANSIENT, error, status, retry_after(retry_header))
    if status in (401, 403):
        return Outcome(Result.CONFIG, error, status)
    if 300 <= status < 400:
        return Outcome(Result.PERMANENT, f"HTTP {status}: redirects are not followed", status)
    return Outcome(Result.PERMANENT, error, status)
