"""Twilio SMS and WhatsApp: the Messages API, its error codes, and its callback signatures.

`POST {HERALD_TWILIO_BASE_URL}/2010-04-01/Accounts/{sid}/Messages.json`, HTTP Basic
(account SID, auth token), form `To, From | MessagingServiceSid, Body[, StatusCallback]`;
WhatsApp puts `whatsapp:` before both numbers and sends templates as `ContentSid` +
`ContentVariables`. Errors are classified by Twilio's numeric `code`, never by message text.

A message handed to Twilio costs money and cannot be recalled: the delivery is marked right
before the request leaves, so a timeout without an answer is `unknown`, never a second SMS."""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from app.config import Settings
from app.delivery import catalogue
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer, BlockedAddress
from app.delivery.outcome import Outcome, Result, of_http, retry_after

WHATSAPP_PREFIX = "whatsapp:"
# Twilio's own words for what each code means, shortened; the result says what Herald does.
OPTED_OUT = 21610
_CODES: dict[int, tuple[Result, str]] = {
    OPTED_OUT: (Result.PERMANENT, "the recipient replied STOP and is opted out"),
    21211: (Result.PERMANENT, "the 'To' number is not a valid phone number"),
    21614: (Result.PERMANENT, "the 'To' number cannot receive SMS (not a mobile number)"),
    21612: (Result.PERMANENT, "Twilio cannot route a message from this sender to the number"),
    21608: (Result.PERMANENT, "a trial account can only send to verified numbers"),
    21617: (Result.PERMANENT, "the body is longer than 1600 characters"),
    63016: (
        Result.PERMANENT,
        "WhatsApp refuses free text outside the 24-hour customer-service window: send an "
        "approved template (override.channel.whatsapp.contentSid or "
        "override.twilio_whatsapp.ContentSid)",
    ),
    63014: (Result.PERMANENT, "the WhatsApp user blocked this sender"),
    20003: (Result.CONFIG, "authentication failed: check TWILIO_ACCOUNT_SID and the auth token"),
    20404: (Result.CONFIG, "no such account or resource: check TWILIO_ACCOUNT_SID"),
    21212: (Result.CONFIG, "the 'From' number is not a valid phone number"),
    21606: (Result.CONFIG, "the 'From' number is not an SMS-capable number of this account"),
    21408: (Result.CONFIG, "the account may not send to this region (geo permissions)"),
    63007: (Result.CONFIG, "no WhatsApp sender for the 'From' number on this account"),
    20429: (Result.TRANSIENT, "too many requests"),
    14107: (Result.TRANSIENT, "the account's SMS rate limit was exceeded"),
}


def _config(attempt: Attempt) -> dict[str, Any]:
    return provider_config(attempt.config, attempt.override)


def messages_url(settings: Settings, account_sid: str) -> str:
    base = settings.twilio_base_url.rstrip("/")
    return f"{base}/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json"


def callback_url(settings: Settings, provider_id: int) -> str | None:
    """Where Twilio reports on a message of this provider; None without HERALD_PUBLIC_URL."""
    if not settings.public_url or not provider_id:
        return None
    return f"{settings.public_url.rstrip('/')}/v3/providers/{provider_id}/callback"


def _field(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _form(attempt: Attempt, config: dict[str, Any]) -> dict[str, str]:
    whatsapp = attempt.channel == catalogue.WHATSAPP
    prefix = WHATSAPP_PREFIX if whatsapp else ""
    content = attempt.content
    to = attempt.target or ""
    form: dict[str, str] = {"To": to if to.startswith(prefix) else prefix + to}
    sender = str(config.get("TWILIO_FROM_NUMBER") or "")
    if sender:
        form["From"] = sender if sender.startswith(prefix) else prefix + sender
    if config.get("MESSAGING_SERVICE_SID"):
        form["MessagingServiceSid"] = str(config["MESSAGING_SERVICE_SID"])
    if whatsapp and content.get("contentSid"):
        form["ContentSid"] = str(content["contentSid"])
        if content.get("contentVariables"):
            form["ContentVariables"] = _field(content["contentVariables"])
    else:
        form["Body"] = str(content.get("body") or "")
    callback = callback_url(attempt.settings, attempt.provider_id)
    if callback:
        form["StatusCallback"] = callback
    # `override.<providerId>` goes into the request as Twilio parameters (ContentSid,
    # ContentVariables, MediaUrl, ValidityPeriod, …); a template replaces the free text.
    extra = {k: _field(v) for k, v in passthrough(attempt.override).items() if v is not None}
    if "ContentSid" in extra and "Body" not in extra:
        form.pop("Body", None)
    form.update(extra)
    return form


async def send(attempt: Attempt) -> Outcome:
    """Send one SMS or WhatsApp message (the channel decides) through Twilio."""
    config = _config(attempt)
    sid = str(config.get("TWILIO_ACCOUNT_SID") or "")
    token = str(config.get("TWILIO_AUTH_TOKEN") or "")
    if not sid or not token:
        return Outcome(Result.CONFIG, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
    if not config.get("TWILIO_FROM_NUMBER") and not config.get("MESSAGING_SERVICE_SID"):
        return Outcome(Result.CONFIG, "TWILIO_FROM_NUMBER or MESSAGING_SERVICE_SID is required")
    form = _form(attempt, config)
    answer = await hand_over(
        attempt,
        messages_url(attempt.settings, sid),
        data=form,
        auth=(sid, token),
        headers={"Accept": "application/json"},
    )
    if isinstance(answer, Outcome):
        return answer
    return classify(answer)


async def hand_over(attempt: Attempt, url: str, **kwargs: Any) -> Answer | Outcome:
    """POST the message, marked as handed over right before it leaves (shared by the SMS
    APIs): only a failure that proves nothing left (no connection) is safe to retry."""
    await attempt.mark_data()
    try:
        return await attempt.http.post(url, **kwargs)
    except BlockedAddress as exc:
        return Outcome(Result.CONFIG, str(exc), handed_over=False)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect: {exc}", handed_over=False)
    except (httpx.HTTPError, TimeoutError) as exc:
        detail = str(exc) or "no answer within HERALD_DELIVERY_HTTP_TIMEOUT"
        return Outcome(Result.TRANSIENT, f"{type(exc).__name__}: {detail}")


def _json(body: str) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def classify(answer: Answer) -> Outcome:
    """What a Messages API answer means: 201 with the message sid, or an error by its code."""
    document = _json(answer.body)
    if 200 <= answer.status < 300:
        sid = document.get("sid")
        return Outcome.sent(str(sid) if sid else None, answer.status)
    code = document.get("code")
    wait = retry_after(answer.headers.get("retry-after"))
    if isinstance(code, int) and code in _CODES:
        result, meaning = _CODES[code]
        message = str(document.get("message") or "")[:200]
        error = f"Twilio {code}: {meaning} ({message})" if message else f"Twilio {code}: {meaning}"
        return Outcome(result, error, answer.status, wait, dead_target=code == OPTED_OUT)
    fallback = of_http(answer.status, answer.body, retry_header=answer.headers.get("retry-after"))
    if isinstance(code, int):
        return Outcome(
            fallback.result,
            f"Twilio {code}: {str(document.get('message') or '')[:200]}",
            answer.status,
            fallback.retry_after,
        )
    return fallback


# -- callback signatures -------------------------------------------------------------------


def signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, url + each name and value, sorted by
    name, then value))."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + v for name in sorted(values) for v in sorted(values[name]))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> list[str]:
    # Twilio signs an https URL as it was configured: with or without the default port.
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=host))
    port = parts.port or default
    return list(dict.fromkeys([url, bare, urlunsplit(parts._replace(netloc=f"{host}:{port}"))]))


def verified(token: str, url: str, params: Sequence[tuple[str, str]], given: str) -> bool:
    """Whether `given` is Twilio's signature of this request (compared in constant time)."""
    return any(
        hmac.compare_digest(signature(token, candidate, params).encode(), given.encode())
        for candidate in _with_and_without_port(url)
    )
