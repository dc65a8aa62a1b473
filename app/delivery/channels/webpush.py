"""Web push (`default_webpush`): RFC 8030 delivery of an RFC 8291 `aes128gcm` message, signed
with the app's VAPID pair (RFC 8292), to one browser subscription.

The message is what Engagespot's service worker reads (`data.engagespot` for the click,
`data.customerData` for what it shows), at most 4096 bytes once encrypted."""

import base64
import binascii
import json
from typing import Any

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from app.auth import tokens
from app.delivery import catalogue
from app.delivery.channels import vapid
from app.delivery.channels.base import Attempt, WebPushFacts
from app.delivery.http import Answer, BlockedAddress
from app.delivery.outcome import Outcome, Result, of_http, retry_after
from app.errors import BadRequest

# Without a TTL push services default to 0: dropped unless the browser is online right now.
DEFAULT_TTL = catalogue.WEB_PUSH_MAX_TTL
DEFAULT_URGENCY = "normal"
MAX_BODY = 4096  # what every push service must accept (RFC 8030 §7.2)
# salt (16) + record size (4) + key id length (1) + sender public key (65)
HEADER_BYTES = 86
# One record: the plaintext, its padding delimiter (1) and the AES-GCM tag (16).
MAX_PLAINTEXT = MAX_BODY - HEADER_BYTES - 1 - 16  # 3993, RFC 8291 §4
ELLIPSIS = "…"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def subscription(target: str) -> tuple[str, ec.EllipticCurvePublicKey, bytes]:
    """(endpoint, the browser's P-256 key, its auth secret) of a stored subscription."""
    try:
        sub = json.loads(target)
        endpoint, keys = sub["endpoint"], sub["keys"]
        raw_key, auth = _b64url(keys["p256dh"]), _b64url(keys["auth"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValueError("the subscription is not endpoint + keys.p256dh + keys.auth") from None
    if len(auth) != 16:
        raise ValueError("the subscription's keys.auth is not 16 bytes")
    if len(raw_key) != 65 or raw_key[0] != 4:
        raise ValueError("the subscription's keys.p256dh is not an uncompressed P-256 point")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
    except ValueError:
        raise ValueError("the subscription's keys.p256dh is not a point on P-256") from None
    return str(endpoint), public, auth


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _cut(document: dict[str, Any], customer: dict[str, Any], key: str, limit: int) -> bool:
    """Shorten customer[key] to the longest prefix (with an ellipsis) that fits; whether
    anything fits."""
    value = str(customer[key] or "")
    customer[key] = value
    if len(_dump(document)) <= limit:
        return True
    low, high, best = 0, len(value) - 1, None
    while low <= high:
        middle = (low + high) // 2
        customer[key] = value[:middle] + ELLIPSIS if middle else ""
        if len(_dump(document)) <= limit:
            best, low = customer[key], middle + 1
        else:
            high = middle - 1
    customer[key] = best if best is not None else ""
    return best is not None


def fit(document: dict[str, Any], limit: int = MAX_PLAINTEXT) -> bytes:
    """The document as JSON within `limit` bytes. The body is shortened first; only when the
    title, icon and link alone are too long is the icon dropped, else the link, else both,
    and then the title shortened. `data.engagespot` and the id are never touched (they are
    bounded and small)."""
    encoded = _dump(document)
    if len(encoded) <= limit:
        return encoded
    customer: dict[str, Any] = document["data"]["customerData"]
    for key in ("title", "body"):
        # A text of `limit` characters is at least `limit` bytes: it is cut in any case, and
        # the search below then works on a few kilobytes, not on a megabyte.
        customer[key] = customer[key][:limit]
    kept = dict(customer)
    for drop in ((), ("icon",), ("url",), ("icon", "url")):
        customer.update(kept)
        for key in drop:
            customer[key] = None
        if _cut(document, customer, "body", limit):
            return _dump(document)
    _cut(document, customer, "title", limit)
    return _dump(document)


def payload(facts: WebPushFacts, recipient: str, content: dict[str, Any]) -> bytes:
    """The service worker's message: who clicks (key, user, signature) and what it shows."""

    def text(key: str) -> str:
        value = content.get(key)
        return "" if value is None else str(value)

    document = {
        "data": {
            "engagespot": {
                "apiKey": facts.api_key,
                "userIdentifier": recipient,
                # The legacy HMAC: the click route accepts it even in secure mode, where the
                # worker has no user token (app/auth/dependencies.py `push_clicker`).
                "userSignature": tokens.user_signature(facts.api_secret, recipient),
            },
            "customerData": {
                # null when the user has no inbox row for this send (inApp off for them):
                # the worker still shows the message and opens the link.
                "id": facts.inbox_id,
                "title": text("title"),
                "body": text("message"),
                "icon": content.get("icon") or None,
                "url": content.get("url") or None,
            },
        }
    }
    return fit(document)


def encrypt(plaintext: bytes, public: ec.EllipticCurvePublicKey, auth: bytes) -> bytes:
    """RFC 8291: a fresh sender key per message, one aes128gcm record."""
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        plaintext, private_key=sender, dh=public, auth_secret=auth, version="aes128gcm"
    )
    return body


def options(attempt: Attempt) -> tuple[int, str, str | None]:
    """(TTL, Urgency, Topic): the send's provider `_config`, then `override.channel.webPush`,
    then the provider's stored config, then 4 weeks and normal."""
    spec = catalogue.SPECS[catalogue.DEFAULT_WEBPUSH]
    extra = attempt.override.get("_config")
    per_send = catalogue.normalise(spec, extra) if isinstance(extra, dict) else {}
    stored = catalogue.normalise(spec, {k: v for k, v in attempt.config.items() if spec.key(k)})
    push = attempt.content.get("push") or {}
    ttl = per_send.get("TTL") or push.get("ttl") or stored.get("TTL") or DEFAULT_TTL
    urgency = (
        per_send.get("URGENCY") or push.get("urgency") or stored.get("URGENCY") or DEFAULT_URGENCY
    )
    return int(ttl), str(urgency), push.get("topic")


def outcome(answer: Answer) -> Outcome:
    status = answer.status
    if 200 <= status < 300:
        location = answer.headers.get("location")
        return Outcome.sent(location[:500] if location else None, status)
    error = f"HTTP {status}: {answer.body[:300]}".strip()
    wait = retry_after(answer.headers.get("retry-after"))
    if status in (404, 410):
        # The push service says the subscription expired or was withdrawn: forget it.
        return Outcome(Result.PERMANENT, error, status, dead_target=True)
    if status == 406:
        # Windows' push service (WNS) answers 406 where the RFC says 429.
        return Outcome(Result.TRANSIENT, error, status, wait)
    return of_http(status, answer.body, retry_header=answer.headers.get("retry-after"))


async def send(attempt: Attempt) -> Outcome:
    subject = attempt.settings.vapid_subject
    if subject is None:
        return Outcome(Result.CONFIG, "web push needs HERALD_VAPID_SUBJECT (mailto: or https:)")
    facts = attempt.web_push
    if facts is None or attempt.target is None:
        return Outcome(Result.PERMANENT, "no subscription or app keys for this delivery")
    try:
        endpoint, public, auth = subscription(attempt.target)
        audience = vapid.origin(endpoint)
    except ValueError as exc:
        return Outcome(Result.PERMANENT, str(exc))
    try:
        ttl, urgency, topic = options(attempt)
    except BadRequest as exc:
        return Outcome(Result.PERMANENT, f"override.{attempt.provider}._{exc.args[0]}")
    body = encrypt(payload(facts, attempt.recipient, attempt.content), public, auth)
    headers = {
        "Authorization": vapid.authorization(
            private_pem=facts.vapid_private_key,
            public_key=facts.vapid_public_key,
            audience=audience,
            subject=subject,
        ),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "TTL": str(ttl),
        "Urgency": urgency,
    }
    if topic:
        headers["Topic"] = topic
    await attempt.mark_data()
    try:
        answer = await attempt.http.post(endpoint, content=body, headers=headers)
    except BlockedAddress as exc:
        return Outcome(Result.PERMANENT, str(exc), handed_over=False)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect: {exc}", handed_over=False)
    except (httpx.HTTPError, TimeoutError) as exc:
        return Outcome(Result.TRANSIENT, f"{type(exc).__name__}: {exc}".strip())
    return outcome(answer)
