from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.config import Settings
from app.delivery.http import Client
from app.delivery.outcome import Outcome


@dataclass(frozen=True)
class WebPushFacts:
    """What a web push carries beyond the delivery: the app's keys and the user's inbox row
    of this send (its id is the one the service worker's click marks read)."""

    api_key: str
    api_secret: str
    vapid_public_key: str
    vapid_private_key: str
    inbox_id: int | None


@dataclass(frozen=True)
class Attempt:
    """Everything one attempt needs, loaded before the send: no database during it."""

    delivery_id: int
    request_id: str
    message_id: str
    recipient: str
    channel: str
    target: str | None
    provider: str
    config: dict[str, Any]
    override: dict[str, Any]
    content: dict[str, Any]
    created_at: datetime
    settings: Settings
    http: Client
    # Called right before the point after which the message may have been handed over.
    mark_data: Callable[[], Awaitable[None]]
    # The provider row's id (delivery callbacks name it in their URL).
    provider_id: int = 0
    # Loaded at the claim for webPush deliveries only.
    web_push: WebPushFacts | None = None


class Sender(Protocol):
    async def __call__(self, attempt: Attempt) -> Outcome: ...


def provider_config(config: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Stored config under the send's `_config` (and, for SMTP, flat config keys)."""
    extra = override.get("_config")
    return {**config, **(extra if isinstance(extra, dict) else {})}


def passthrough(override: dict[str, Any]) -> dict[str, Any]:
    """The part of a provider override that goes into what the provider sends."""
    return {k: v for k, v in override.items() if k != "_config"}
