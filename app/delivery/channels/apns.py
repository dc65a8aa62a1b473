"""APNs: `POST /3/device/<token>` over HTTP/2 with an ES256 provider token.

The provider token is minted once per key and reused for 40 minutes (Apple: refresh no more
than once every 20 minutes and no less than once every 60; minting per request earns 429
TooManyProviderTokenUpdates). `apns-id` is derived from the delivery's fixed message id, so a
retry carries the same id. Headers come from the send's portable options
(`override.channel.mobilePush`: priority, ttl, collapseKey) and, over those, from the
`apns-*` keys of `override.apns`; its other keys are merged into the JSON payload."""

import hashlib
import json
import re
import time
import uuid
from typing import Any

import jwt

from app.config import Settings
from app.delivery import credentials
from app.delivery.channels import push
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer
from app.delivery.outcome import Outcome, Result, retry_after

PRODUCTION = "https://api.push.apple.com"
SANDBOX = "https://api.sandbox.push.apple.com"
# Apple accepts a provider token for an hour. Told it lives 44 min 27 s, the cache uses it
# for 40 minutes (push.kept_for keeps 90 %), in the middle of Apple's 20 to 60.
LIFETIME = 40 * 60 / 0.9
MAX_PAYLOAD = 4096
DEFAULT_TTL = 28 * 86_400
_TOKEN = re.compile(r"^[0-9a-fA-F]{16,400}$")
TOKENS = push.TokenCache()


def apns_id(message_id: str) -> str:
    """The delivery's message id as the canonical lower-case UUID APNs wants."""
    try:
        return str(uuid.UUID(hex=message_id.removeprefix("msg_")))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, message_id))


def provider_token(*, team_id: str, key_id: str, key: Any, now: int) -> str:
    return jwt.encode({"iss": team_id, "iat": now}, key, algorithm="ES256", headers={"kid": key_id})


def base_url(settings: Settings, config: dict[str, Any]) -> str:
    """HERALD_APNS_BASE_URL, else Apple's sandbox or production host by SANDBOX."""
    if settings.apns_base_url:
        return settings.apns_base_url.rstrip("/")
    sandbox = config.get("SANDBOX")
    if isinstance(sandbox, str):
        sandbox = sandbox.strip().lower() in ("true", "1", "yes", "on")
    return SANDBOX if sandbox else PRODUCTION


def request(attempt: Attempt, topic: str) -> tuple[dict[str, str], bytes]:
    """Headers (without authorization) and the JSON payload."""
    content = attempt.content
    options = content.get("push") or {}
    title, body = content.get("title") or "", content.get("message") or ""
    aps: dict[str, Any] = {}
    if title or body:
        aps["alert"] = {k: v for k, v in (("title", title), ("body", body)) if v}
    else:
        aps["content-available"] = 1
    if "sound" in options:
        aps["sound"] = options["sound"]
    if "badge" in options:
        aps["badge"] = options["badge"]
    payload: dict[str, Any] = {
        k: v for k, v in dict(content.get("data") or {}).items() if k != "aps"
    }
    if content.get("url"):
        payload.setdefault("url", content["url"])
    payload["aps"] = aps
    alert = "alert" in aps
    priority = options.get("priority")
    ttl = options.get("ttl", DEFAULT_TTL)
    headers = {
        "apns-topic": topic,
        "apns-push-type": "alert" if alert else "background",
        # Apple refuses priority 10 for background pushes.
        "apns-priority": "5" if priority == "normal" or not alert else "10",
        # From the delivery's creation, so a retry does not extend its life; 0: once only.
        "apns-expiration": str(int(attempt.created_at.timestamp()) + ttl if ttl else 0),
        "apns-id": apns_id(attempt.message_id),
    }
    if "collapseKey" in options:
        headers["apns-collapse-id"] = options["collapseKey"]
    extra = passthrough(attempt.override)
    headers.update({k: str(v) for k, v in extra.items() if k.startswith("apns-")})
    payload = push.merged(payload, {k: v for k, v in extra.items() if not k.startswith("apns-")})
    return headers, push.compact(payload)


def classify(answer: Answer) -> tuple[Outcome, bool]:
    """The attempt's outcome, and whether the provider token itself was refused."""
    status = answer.status
    if status == 200:
        return Outcome.sent(answer.headers.get("apns-id"), status), False
    body = push.json_body(answer)
    reason = body.get("reason") if isinstance(body, dict) else None
    reason = reason if isinstance(reason, str) else ""
    text = f"HTTP {status} {reason or answer.body[:200]}".strip()
    if status == 410 or reason in ("BadDeviceToken", "Unregistered"):
        # 410: "the device token is no longer active for the topic".
        return Outcome(Result.PERMANENT, text, status, dead_target=True), False
    if status == 403 and reason in ("ExpiredProviderToken", "InvalidProviderToken"):
        return Outcome(Result.CONFIG, text, status), True
    if status == 429 or status >= 500:
        # TooManyRequests is about this one device token: it delays this delivery only.
        wait = retry_after(answer.headers.get("retry-after"))
        return Outcome(Result.TRANSIENT, text, status, wait), False
    if status in (403, 404, 405) or reason in ("BadTopic", "MissingTopic", "TopicDisallowed"):
        return Outcome(Result.CONFIG, text, status), False
    return Outcome(Result.PERMANENT, text, status), False


async def send(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    names = ("TEAM_ID", "KEY_ID", "PRIVATE_KEY", "BUNDLE_ID")
    if missing := [n for n in names if not config.get(n)]:
        return Outcome(Result.CONFIG, f"{', '.join(missing)} not set", handed_over=False)
    team_id, key_id, topic = (str(config[n]).strip() for n in ("TEAM_ID", "KEY_ID", "BUNDLE_ID"))
    try:
        key = credentials.apns_key(str(config["PRIVATE_KEY"]))
    except ValueError as exc:
        return Outcome(Result.CONFIG, f"PRIVATE_KEY {exc}", handed_over=False)
    token = attempt.target or ""
    if not _TOKEN.match(token):
        return Outcome(Result.PERMANENT, "not an APNs device token (hex digits)")
    headers, body = request(attempt, topic)
    if len(body) > MAX_PAYLOAD:
        return Outcome(Result.PERMANENT, f"payload is {len(body)} bytes, APNs takes {MAX_PAYLOAD}")
    url = f"{base_url(attempt.settings, config)}/3/device/{token}"
    cache_key = hashlib.sha256(
        json.dumps([team_id, key_id, str(config["PRIVATE_KEY"])]).encode()
    ).hexdigest()

    async def mint() -> tuple[str, float]:
        signed = provider_token(team_id=team_id, key_id=key_id, key=key, now=int(time.time()))
        return signed, LIFETIME

    http = attempt.http.http2()
    for last in (False, True):
        signed = await TOKENS.get(cache_key, mint)
        await attempt.mark_data()
        answer = await push.post(http, url, body, {**headers, "authorization": f"bearer {signed}"})
        if isinstance(answer, Outcome):
            return answer
        outcome, token_refused = classify(answer)
        if token_refused and not last:
            # One new token (shared by every attempt that saw the refusal), then it is the
            # key's fault: a wrong TEAM_ID/KEY_ID, a revoked key.
            TOKENS.drop(cache_key, signed)
            continue
        return outcome
    raise AssertionError("unreachable")
