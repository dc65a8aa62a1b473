"""POSTs to a URL: the signed `default_webhook`, and Slack, Discord and Teams webhooks."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer, BlockedAddress
from app.delivery.outcome import Outcome, Result, of_http, retry_after
from app.kit.timefmt import iso


def _url(attempt: Attempt, config: dict[str, Any]) -> str | None:
    found = attempt.target or config.get("WEBHOOK_URL")
    return str(found) if found else None


async def _post(
    attempt: Attempt, url: str, body: bytes, headers: dict[str, str]
) -> Answer | Outcome:
    try:
        return await attempt.http.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )
    except BlockedAddress as exc:
        return Outcome(Result.PERMANENT, str(exc))
    except httpx.ConnectError as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect: {exc}")
    except (httpx.HTTPError, TimeoutError) as exc:
        return Outcome(Result.TRANSIENT, f"{type(exc).__name__}: {exc}".strip())


def _done(answer: Answer | Outcome) -> Outcome:
    if isinstance(answer, Outcome):
        return answer
    return of_http(answer.status, answer.body, retry_header=answer.headers.get("retry-after"))


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` (a Standard Webhooks secret) or any text, used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def signed_headers(key: bytes, message_id: str, body: bytes, *, now: int) -> dict[str, str]:
    """X-WEBHOOK-SIGNATURE (hex HMAC-SHA256 of the body) and the Standard Webhooks trio."""
    signed = f"{message_id}.{now}.".encode() + body
    standard = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "X-WEBHOOK-SIGNATURE": hmac.new(key, body, hashlib.sha256).hexdigest(),
        "webhook-id": message_id,
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,{standard}",
    }


def webhook_body(attempt: Attempt) -> bytes:
    content = attempt.content
    document: dict[str, Any] = {
        "requestId": attempt.request_id,
        "deliveryId": attempt.message_id,
        "timestamp": iso(attempt.created_at),
        "recipient": {"identifier": attempt.recipient},
        "notification": {
            k: content.get(k) for k in ("title", "message", "url", "icon", "data", "category")
        },
    }
    document.update(passthrough(attempt.override))
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


async def webhook(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    url = _url(attempt, config)
    if url is None:
        return Outcome(Result.PERMANENT, "no webhook URL")
    body = webhook_body(attempt)
    headers = {"webhook-id": attempt.message_id}
    if config.get("SIGNING_KEY"):
        headers = signed_headers(
            signing_key(str(config["SIGNING_KEY"])), attempt.message_id, body, now=int(time.time())
        )
    return _done(await _post(attempt, url, body, headers))


def _text(content: dict[str, Any], *, bold: str) -> str:
    lines = [f"{bold}{content.get('title') or ''}{bold}"]
    if content.get("message"):
        lines.append(str(content["message"]))
    return "\n".join(lines)


async def slack(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    url = _url(attempt, config)
    if url is None:
        return Outcome(Result.PERMANENT, "no Slack webhook URL")
    content = attempt.content
    text = _text(content, bold="*")
    if content.get("url"):
        text += f"\n<{content['url']}|Click Here>"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    document = {"text": text, "blocks": blocks, **passthrough(attempt.override)}
    answer = await _post(attempt, url, json.dumps(document).encode(), {})
    if (
        isinstance(answer, Answer)
        and answer.status == 200
        and answer.body.strip() not in ("ok", "")
    ):
        return Outcome(Result.PERMANENT, f"Slack answered {answer.body[:200]!r}", 200)
    return _done(answer)


async def discord(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    url = _url(attempt, config)
    if url is None:
        return Outcome(Result.PERMANENT, "no Discord webhook URL")
    # Without wait=true Discord answers 204 before saving, and a dropped message is silent.
    url += ("&" if "?" in url else "?") + "wait=true"
    content = attempt.content
    embed: dict[str, Any] = {"title": str(content.get("title") or "")[:256]}
    if content.get("message"):
        embed["description"] = str(content["message"])[:4096]
    if content.get("url"):
        embed["url"] = content["url"]
    document: dict[str, Any] = {"content": _text(content, bold="**")[:2000], "embeds": [embed]}
    if config.get("USERNAME"):
        document["username"] = config["USERNAME"]
    if config.get("AVATAR_URL"):
        document["avatar_url"] = config["AVATAR_URL"]
    document.update(passthrough(attempt.override))
    answer = await _post(attempt, url, json.dumps(document).encode(), {})
    if isinstance(answer, Answer) and answer.status == 429:
        return Outcome(
            Result.TRANSIENT,
            f"HTTP 429: {answer.body[:200]}",
            429,
            retry_after(answer.headers.get("retry-after")) or _discord_retry_after(answer.body),
        )
    if isinstance(answer, Answer) and answer.status == 200:
        try:
            found = json.loads(answer.body).get("id")
        except (ValueError, AttributeError):
            found = None
        return Outcome.sent(str(found) if found else None, 200)
    return _done(answer)


def _discord_retry_after(body: str) -> float | None:
    try:
        value = float(json.loads(body).get("retry_after"))
    except (ValueError, AttributeError, TypeError):
        return None
    # Documented in seconds but reported in milliseconds for webhooks (discord-api-docs#4722).
    return min(value / 1000 if value > 100 else value, 86_400.0)


async def teams(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    url = _url(attempt, config)
    if url is None:
        return Outcome(Result.PERMANENT, "no Teams webhook URL")
    content = attempt.content
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": str(content.get("title") or ""),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    if content.get("message"):
        body.append({"type": "TextBlock", "text": str(content["message"]), "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if content.get("url"):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Click Here", "url": content["url"]}]
    # Workflows webhooks take Adaptive Cards only (the MessageCard connectors are retired).
    document = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
        **passthrough(attempt.override),
    }
    return _done(await _post(attempt, url, json.dumps(document).encode(), {}))
