"""What a send says on each channel, rendered once per send, and the send's overrides.

Defaults follow Engagespot: subject = title, body = title and message, a "Click Here" link to
`url`. `override.channel.email` (subject, from, fromName, replyTo, cc, bcc, body) changes the
e-mail; `override.<providerId>` applies only when that provider sends (`_config` overrides its
stored config, the rest goes into what the provider sends). Provider overrides may carry
secrets, so they are sealed before the send is stored."""

import base64
import binascii
import html
import json
import re
from typing import Any

from app.delivery import catalogue, push_content
from app.delivery.crypto import Keyring
from app.errors import BadRequest

SEALED = "$sealed"
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
# `sendgrid` is how Engagespot's fields page spells `sendgrid_email`.
PROVIDER_KEYS = frozenset(catalogue.SPECS) | {"sendgrid"}
_CONTEXT = "send overrides"


def _emails(value: object, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not _EMAIL.match(item.strip()) or len(item) > 320:
            raise BadRequest(f"{where} must be an e-mail address or a list of them")
        out.append(item.strip())
    if len(out) > 50:
        raise BadRequest(f"{where} may name at most 50 addresses")
    return out


def _email_override(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("override.channel.email must be an object")
    out: dict[str, Any] = {}
    for key in ("subject", "fromName", "body"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                raise BadRequest(f"override.channel.email.{key} must be a string")
            out[key] = raw[key]
    for key in ("from", "replyTo"):
        if raw.get(key) is not None:
            out[key] = _emails(raw[key], f"override.channel.email.{key}")[0]
    for key in ("cc", "bcc"):
        if raw.get(key) is not None:
            out[key] = _emails(raw[key], f"override.channel.email.{key}")
    return out


def attachments(data: dict[str, Any] | None) -> list[dict[str, str]]:
    """`data.attachments` checked: name, contentType, base64 content (at most 10 MB each)."""
    listed = (data or {}).get("attachments")
    if listed is None:
        return []
    if not isinstance(listed, list) or len(listed) > 20:
        raise BadRequest("data.attachments must be a list of at most 20 attachments")
    out: list[dict[str, str]] = []
    for i, item in enumerate(listed):
        where = f"data.attachments[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object")
        name, kind, content = item.get("name"), item.get("contentType"), item.get("content")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise BadRequest(f"{where}.name must be a file name")
        if not isinstance(content, str):
            raise BadRequest(f"{where}.content must be base64 text")
        try:
            raw = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}.content must be base64 text") from None
        if len(raw) > MAX_ATTACHMENT_BYTES:
            raise BadRequest(f"{where} is larger than 10 MB")
        kind = kind if isinstance(kind, str) and "/" in kind else "application/octet-stream"
        out.append({"name": name, "contentType": kind, "content": content})
    return out


def check(
    *,
    channel_override: dict[str, Any] | None,
    data: dict[str, Any] | None,
    override: dict[str, Any] | None = None,
) -> None:
    """Refuse a send whose e-mail, SMS, WhatsApp or web-push override or attachments are
    malformed, before it is stored."""
    _email_override((channel_override or {}).get("email"))
    for channel in (catalogue.SMS, catalogue.WHATSAPP):
        _text_override(channel, (channel_override or {}).get(channel))
    push_content.options((channel_override or {}).get(catalogue.MOBILE_PUSH))
    attachments(data)
    push_options((channel_override or {}).get(catalogue.WEB_PUSH))
    provider = (override or {}).get(catalogue.DEFAULT_WEBPUSH)
    if isinstance(provider, dict) and isinstance(provider.get("_config"), dict):
        spec = catalogue.SPECS[catalogue.DEFAULT_WEBPUSH]
        try:
            catalogue.normalise(spec, provider["_config"])
        except BadRequest as exc:
            raise BadRequest(f"override.{spec.provider}._{exc.args[0]}") from None


# -- web push ------------------------------------------------------------------------------

_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def push_options(raw: object) -> dict[str, Any]:
    """`override.channel.webPush`: `ttl` (seconds the push service keeps the message for an
    offline browser), `urgency` and `topic` (RFC 8030 §5.2-5.4)."""
    where = f"override.channel.{catalogue.WEB_PUSH}"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object")
    out: dict[str, Any] = {}
    ttl = raw.get("ttl")
    if ttl is not None:
        top = catalogue.WEB_PUSH_MAX_TTL
        if isinstance(ttl, str) and ttl.strip().isdigit():
            ttl = int(ttl)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= top:
            raise BadRequest(f"{where}.ttl must be a number of seconds from 1 to {top}")
        out["ttl"] = int(ttl)
    urgency = raw.get("urgency")
    if urgency is not None:
        if urgency not in catalogue.WEB_PUSH_URGENCIES:
            raise BadRequest(
                f"{where}.urgency must be one of {', '.join(catalogue.WEB_PUSH_URGENCIES)}"
            )
        out["urgency"] = urgency
    topic = raw.get("topic")
    if topic is not None:
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise BadRequest(
                f"{where}.topic must be 1 to 32 characters of A-Z, a-z, 0-9, '-' and '_'"
            )
        out["topic"] = topic
    return out


def seal_provider_overrides(keyring: Keyring, override: dict[str, Any]) -> dict[str, Any]:
    """`override` with each provider-level entry sealed (it may hold API keys, passwords)."""
    out = dict(override)
    for key in PROVIDER_KEYS & override.keys():
        value = override[key]
        if isinstance(value, dict) and SEALED in value:
            continue
        if not isinstance(value, dict):
            raise BadRequest(f"override.{key} must be an object")
        push_content.check_provider_override(key, value)
        out[key] = {SEALED: keyring.seal(json.dumps(value), context=_CONTEXT)}
    return out


def provider_overrides(override: dict[str, Any] | None) -> dict[str, Any]:
    """The provider-level entries of an override, still sealed."""
    return {k: v for k, v in (override or {}).items() if k in PROVIDER_KEYS}


def open_provider_override(
    keyring: Keyring, overrides: dict[str, Any], provider: str
) -> dict[str, Any]:
    """The override for `provider` (also under Engagespot's alias), opened."""
    for key in (provider, "sendgrid" if provider == "sendgrid_email" else None):
        value = overrides.get(key) if key else None
        if isinstance(value, dict):
            if SEALED in value:
                opened: dict[str, Any] = json.loads(keyring.open(value[SEALED], context=_CONTEXT))
                return opened
            return value
    return {}


def render(
    channel: str,
    notification: dict[str, Any],
    *,
    channel_override: dict[str, Any] | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    """The channel's message for every recipient of a send."""
    title = notification.get("title") or ""
    message = notification.get("message") or ""
    url = notification.get("url")
    if channel in (catalogue.SMS, catalogue.WHATSAPP):
        return _text_message(channel, notification, channel_override)
    if channel == catalogue.WEB_PUSH:
        return {
            "title": title,
            "message": message,
            "url": url,
            "icon": notification.get("icon"),
            "push": push_options((channel_override or {}).get(catalogue.WEB_PUSH)),
        }
    if channel == catalogue.MOBILE_PUSH:
        return push_content.render(notification, channel_override)
    if channel != catalogue.EMAIL:
        return {
            "title": title,
            "message": message,
            "url": url,
            "icon": notification.get("icon"),
            "data": notification.get("data"),
            "category": notification.get("category"),
        }
    email = _email_override((channel_override or {}).get("email"))
    body = email.get("body")
    text_parts = [body] if body else [p for p in (title, message) if p]
    html_parts = (
        [body]
        if body
        else [f"<p><strong>{html.escape(title)}</strong></p>"]
        + ([f"<p>{html.escape(message)}</p>"] if message else [])
    )
    if url:
        text_parts.append(f"Click Here: {url}")
        html_parts.append(f'<p><a href="{html.escape(url, quote=True)}">Click Here</a></p>')
    return {
        "subject": email.get("subject") or title,
        "text": "\n\n".join(text_parts),
        "html": "\n".join(html_parts),
        "from": email.get("from"),
        "fromName": email.get("fromName"),
        "replyTo": email.get("replyTo"),
        "cc": email.get("cc", []),
        "bcc": email.get("bcc", []),
        "attachments": attachments(data),
    }


# -- SMS and WhatsApp ----------------------------------------------------------------------

MAX_TEXT = 1600  # Twilio's limit for one (concatenated) message body


def _text_override(channel: str, raw: object) -> dict[str, Any]:
    """`override.channel.sms` / `.whatsapp`: `body`; for WhatsApp also a template,
    `contentSid` with `contentVariables` (an object, or its JSON text)."""
    if raw is None:
        return {}
    where = f"override.channel.{channel}"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object")
    out: dict[str, Any] = {}
    body = raw.get("body")
    if body is not None:
        if not isinstance(body, str) or len(body) > MAX_TEXT:
            raise BadRequest(f"{where}.body must be a string of at most {MAX_TEXT} characters")
        out["body"] = body
    if channel != catalogue.WHATSAPP:
        return out
    sid = raw.get("contentSid")
    if sid is not None:
        if not isinstance(sid, str) or not 0 < len(sid) <= 64:
            raise BadRequest(f"{where}.contentSid must be a template id (HX…)")
        out["contentSid"] = sid
    variables = raw.get("contentVariables")
    if variables is not None:
        if isinstance(variables, str):
            try:
                variables = json.loads(variables)
            except ValueError:
                variables = None
        if not isinstance(variables, dict) or len(json.dumps(variables)) > 16_384:
            raise BadRequest(f"{where}.contentVariables must be an object (at most 16 KB)")
        out["contentVariables"] = {str(k): str(v) for k, v in variables.items()}
    return out


def _text_message(
    channel: str, notification: dict[str, Any], channel_override: dict[str, Any] | None
) -> dict[str, Any]:
    """An SMS or WhatsApp text: title, message and url on their own lines, unless the channel
    override gives the body (or, for WhatsApp, a template)."""
    own = _text_override(channel, (channel_override or {}).get(channel))
    parts = [notification.get("title"), notification.get("message"), notification.get("url")]
    body = own.get("body") or "\n".join(str(p) for p in parts if p)
    return {
        "body": body[:MAX_TEXT],
        "contentSid": own.get("contentSid"),
        "contentVariables": own.get("contentVariables"),
        "title": notification.get("title") or "",
        "message": notification.get("message") or "",
        "url": notification.get("url"),
    }
