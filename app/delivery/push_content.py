"""The mobile-push message of a send: `override.channel.mobilePush` checked and rendered.

Channel-level fields, understood by every provider (FCM, APNs, Expo):
`title`, `message` (replace the notification's), `data` (an object, replaces the send's
data), `ttl` (seconds the push service keeps an undelivered message, ≤ 28 days), `priority`
(`high` or `normal`), `collapseKey` (a newer message with the same key replaces an undelivered
one), `sound`, `badge`. Provider-level overrides (`override.fcm`, `override.apns`,
`override.expo`) are the providers' own fields, merged into what that provider sends."""

import re
from typing import Any

from app.errors import BadRequest

MAX_TTL = 28 * 86_400
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{1,200}$")
APNS_HEADERS = frozenset(
    {"apns-push-type", "apns-priority", "apns-expiration", "apns-collapse-id", "apns-topic"}
)
_WHERE = "override.channel.mobilePush"


def options(raw: object) -> dict[str, Any]:
    """The checked channel override (empty when there is none)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{_WHERE} must be an object")
    out: dict[str, Any] = {}
    for key in ("title", "message", "sound", "collapseKey"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                raise BadRequest(f"{_WHERE}.{key} must be a string")
            out[key] = raw[key]
    if "collapseKey" in out and len(out["collapseKey"].encode()) > 64:
        raise BadRequest(f"{_WHERE}.collapseKey must be at most 64 bytes (APNs' limit)")
    if raw.get("data") is not None:
        if not isinstance(raw["data"], dict):
            raise BadRequest(f"{_WHERE}.data must be an object")
        out["data"] = raw["data"]
    if raw.get("ttl") is not None:
        ttl = raw["ttl"]
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            raise BadRequest(f"{_WHERE}.ttl must be whole seconds from 0 to {MAX_TTL}")
        out["ttl"] = ttl
    if raw.get("priority") is not None:
        if raw["priority"] not in ("high", "normal"):
            raise BadRequest(f"{_WHERE}.priority must be 'high' or 'normal'")
        out["priority"] = raw["priority"]
    if raw.get("badge") is not None:
        badge = raw["badge"]
        if isinstance(badge, bool) or not isinstance(badge, int) or badge < 0:
            raise BadRequest(f"{_WHERE}.badge must be a whole number >= 0")
        out["badge"] = badge
    return out


def check_provider_override(provider: str, override: object) -> None:
    """Refuse an `override.apns` whose `apns-*` headers could not be sent."""
    if provider != "apns" or not isinstance(override, dict):
        return
    for key, value in override.items():
        if not key.startswith("apns-"):
            continue
        if key not in APNS_HEADERS:
            known = ", ".join(sorted(APNS_HEADERS))
            raise BadRequest(f"override.apns.{key} is not an APNs header Herald sets ({known})")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise BadRequest(f"override.apns.{key} must be a string or a number")
        if not _HEADER_VALUE.match(str(value)):
            raise BadRequest(f"override.apns.{key} must be printable ASCII, 1 to 200 characters")


def render(notification: dict[str, Any], channel_override: dict[str, Any] | None) -> dict[str, Any]:
    """The push message shared by every recipient's tokens."""
    push = options((channel_override or {}).get("mobilePush"))
    data = push.pop("data", None)
    return {
        "title": push.pop("title", None) or notification.get("title") or "",
        "message": push.pop("message", None) or notification.get("message") or "",
        "url": notification.get("url"),
        "icon": notification.get("icon"),
        "data": data if data is not None else notification.get("data"),
        "category": notification.get("category"),
        "push": push,
    }
