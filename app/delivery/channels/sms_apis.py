"""Other SMS APIs from Engagespot's list: Plivo and Textlocal, each at a base-URL setting.

Same hand-over rule as Twilio (channels/twilio.py `hand_over`): marked right before the
request leaves, so a timeout without an answer is `unknown`, never a second SMS."""

import json
from typing import Any
from urllib.parse import quote

from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.channels.twilio import hand_over
from app.delivery.http import Answer
from app.delivery.outcome import Outcome, Result, of_http


def _json(body: str) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _text(attempt: Attempt) -> str:
    return str(attempt.content.get("body") or "")


async def plivo(attempt: Attempt) -> Outcome:
    """`POST {base}/v1/Account/{AUTH_ID}/Message/`, HTTP Basic, JSON `{src, dst, text}`;
    202 `{"message_uuid": ["…"]}`."""
    config = provider_config(attempt.config, attempt.override)
    auth_id = str(config.get("AUTH_ID") or "")
    token = str(config.get("AUTH_TOKEN") or "")
    body: dict[str, Any] = {
        "src": str(config.get("SENDER") or ""),
        "dst": attempt.target or "",
        "text": _text(attempt),
        **passthrough(attempt.override),
    }
    base = attempt.settings.plivo_base_url.rstrip("/")
    answer = await hand_over(
        attempt,
        f"{base}/v1/Account/{quote(auth_id, safe='')}/Message/",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        auth=(auth_id, token),
    )
    if isinstance(answer, Outcome):
        return answer
    outcome = of_http(answer.status, answer.body, retry_header=answer.headers.get("retry-after"))
    if outcome.result is Result.SENT:
        ids = _json(answer.body).get("message_uuid")
        found = ids[0] if isinstance(ids, list) and ids else None
        return Outcome.sent(str(found) if found else None, answer.status)
    error = _json(answer.body).get("error")
    if isinstance(error, str | dict):
        detail = error if isinstance(error, str) else json.dumps(error)
        return Outcome(outcome.result, f"Plivo HTTP {answer.status}: {detail[:300]}", answer.status)
    return outcome


# Textlocal answers HTTP 200 either way; `errors[].code` says what went wrong.
_TEXTLOCAL: dict[int, Result] = {
    3: Result.CONFIG,  # invalid login details (API_KEY)
    7: Result.CONFIG,  # insufficient credits: another provider may have some
    43: Result.CONFIG,  # invalid sender name
    44: Result.CONFIG,  # no sender name
    192: Result.TRANSIENT,  # not at this time (India's quiet hours)
}


def _textlocal_outcome(answer: Answer) -> Outcome:
    if answer.status != 200:
        return of_http(answer.status, answer.body, retry_header=answer.headers.get("retry-after"))
    document = _json(answer.body)
    if document.get("status") == "success":
        messages = document.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else {}
        found = first.get("id") if isinstance(first, dict) else None
        return Outcome.sent(str(found) if found else None, answer.status)
    errors = document.get("errors")
    error = errors[0] if isinstance(errors, list) and errors else {}
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    text = f"Textlocal {code}: {str(error.get('message') or answer.body)[:300]}"
    if not isinstance(code, int):
        # An answer that says nothing may follow a message that went: `unknown`, not resent.
        return Outcome(Result.TRANSIENT, f"Textlocal: unreadable answer: {answer.body[:300]}")
    return Outcome(_TEXTLOCAL.get(code, Result.PERMANENT), text, 200)


async def textlocal(attempt: Attempt) -> Outcome:
    """`POST {base}/send/`, form `apikey, numbers, sender, message` (the number without `+`);
    `{"status": "success", "messages": [{"id"}]}`."""
    config = provider_config(attempt.config, attempt.override)
    form: dict[str, str] = {
        "apikey": str(config.get("API_KEY") or ""),
        "numbers": (attempt.target or "").lstrip("+"),
        "sender": str(config.get("SENDER") or ""),
        "message": _text(attempt),
    }
    form.update({k: str(v) for k, v in passthrough(attempt.override).items() if v is not None})
    base = attempt.settings.textlocal_base_url.rstrip("/")
    answer = await hand_over(
        attempt, f"{base}/send/", data=form, headers={"Accept": "application/json"}
    )
    if isinstance(answer, Outcome):
        return answer
    return _textlocal_outcome(answer)
